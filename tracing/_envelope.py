"""The event envelope: one typed record for every step of every business transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic import ValidationError as PydanticValidationError

from ._errors import InterlockError, Reason
from ._ids import new_event_id
from ._tracecontext import MAX_TRACESTATE_LENGTH

__all__ = [
    "ENVELOPE_UPCASTERS",
    "SCHEMA_VERSION",
    "SYSTEM_NAME_PATTERN",
    "ErrorInfo",
    "Event",
    "Status",
    "Stored",
    "System",
    "SystemName",
    "is_system_name",
    "upcast_envelope",
]

#: 2 added ``trace_flags`` and ``tracestate``; 3 lets ``source`` and ``target`` name
#: any system (:data:`SystemName`), not only the built-in five. Older envelopes are
#: upcast by their readers (:data:`ENVELOPE_UPCASTERS`).
SCHEMA_VERSION = 3


@dataclass(frozen=True, slots=True)
class Stored:
    """How a field is kept outside Python, when not as its name and annotation say.

    Attached as ``Annotated`` metadata; :class:`tracing.EnvelopeLayout` reads it.
    ``column`` renames the lineage column, ``type`` names its logical type (one of
    ``tracing.LOGICAL_TYPES``), ``empty_as_null`` stores ``""`` as NULL, and
    ``header`` also sends the field as that Kafka header.
    """

    column: str | None = None
    type: str | None = None
    empty_as_null: bool = False
    header: str | None = None


#: What a system's name looks like: a plug-in declares any such name (``SystemInfo``).
SYSTEM_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
_SYSTEM_NAME = re.compile(SYSTEM_NAME_PATTERN)

#: A system's name in an envelope (``source``, ``target``).
SystemName = Annotated[str, StringConstraints(pattern=SYSTEM_NAME_PATTERN)]


def is_system_name(value: object) -> bool:
    """Whether ``value`` can name a system in an envelope."""
    return isinstance(value, str) and _SYSTEM_NAME.match(value) is not None


class System(StrEnum):
    """The names of the systems Interlock ships adapters for, and its own.

    Not a closed list: an envelope's ``source`` and ``target`` are any
    :data:`SystemName`, so a system a plug-in adds (a second support desk, say)
    needs no edit here.
    """

    CRM = "crm"
    ERP = "erp"
    BILLING = "billing"
    SUPPORT = "support"
    INTERLOCK = "interlock"


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
    REPLAYED = "replayed"
    #: A repeat delivery of something already processed; recorded, not acted on.
    DUPLICATE = "duplicate"


class ErrorInfo(BaseModel):
    """What went wrong in a step, in a form retry and dead-letter logic can read."""

    model_config = ConfigDict(frozen=True)

    reason: Reason
    message: str
    retriable: bool = False
    status_code: Annotated[int | None, Stored(column="status")] = None
    error_type: Annotated[str | None, Stored(column="type")] = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        if isinstance(exc, InterlockError):
            return cls(
                reason=exc.reason,
                message=exc.message,
                retriable=exc.retriable,
                status_code=getattr(exc, "status", None),
                error_type=type(exc).__name__,
            )
        return cls(
            reason=Reason.UNKNOWN,
            message=str(exc) or type(exc).__name__,
            error_type=type(exc).__name__,
        )


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One step of a business transaction, as stored in the lineage.

    ``correlation_id`` names the business transaction (it can last days);
    ``causation_id`` is the event that caused this one; ``trace_id``/``span_id``
    tie the step to its OpenTelemetry span, and ``trace_flags``/``tracestate``
    are that span's W3C flags (sampled, random) and vendor state, carried on
    unchanged so the trace continues as the caller started it. ``payload`` is the canonical object,
    with PII already masked.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Annotated[str, Stored(header="event-id")] = Field(default_factory=new_event_id)
    correlation_id: Annotated[str, Stored(header="correlation-id")]
    causation_id: str | None = None
    trace_id: str = ""
    span_id: str = ""
    #: W3C trace flags of the step's span; ``None`` in envelopes from before schema 2.
    trace_flags: Annotated[int | None, Stored(type="uint8")] = Field(default=None, ge=0, le=255)
    tracestate: Annotated[str, Stored(empty_as_null=True)] = Field(
        default="", max_length=MAX_TRACESTATE_LENGTH
    )
    idempotency_key: Annotated[str, Stored(header="idempotency-key")]
    source: SystemName
    target: SystemName | None = None
    kind: Annotated[str, Stored(header="event-kind")]
    step: str
    entity_type: str
    entity_id: str
    status: Status = Status.OK
    attempt: int = 1
    event_time: datetime = Field(default_factory=_now)
    recorded_at: datetime = Field(default_factory=_now)
    #: How long the step's own work took (its span), when it did work.
    duration_ms: float | None = None
    amount: Decimal | None = None
    currency: str | None = None
    customer_id: str | None = None
    schema_version: Annotated[int, Stored(header="schema-version")] = SCHEMA_VERSION
    payload: dict[str, Any] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    #: Set on a re-delivery: the event being replayed.
    replay_of: str | None = None
    replay_id: str | None = None

    @field_validator("kind")
    @classmethod
    def _kind_is_dotted(cls, value: str) -> str:
        if "." not in value or value != value.strip() or " " in value:
            raise ValueError(f"kind must look like 'entity.action', got {value!r}")
        return value

    @field_validator("event_time", "recorded_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value.astimezone(UTC)

    @field_validator("attempt")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("attempt starts at 1")
        return value

    @property
    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of this step's span, to continue its trace.

        The flags are the span's own; an envelope from before schema 2 did not
        record them and was always written as sampled, so it reads ``01``.
        """
        if len(self.trace_id) == 32 and len(self.span_id) == 16:
            flags = 0x01 if self.trace_flags is None else self.trace_flags & 0x03
            return f"00-{self.trace_id}-{self.span_id}-{flags:02x}"
        return None

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        """An envelope from its JSON; one of an older schema version is upcast first.

        Raises ``pydantic.ValidationError`` for a body that is no envelope of any
        version this reader knows.
        """
        try:
            event = cls.model_validate_json(data)
        except PydanticValidationError:
            document = _older_document(data)
            if document is None:
                raise
            return cls.model_validate(upcast_envelope(document))
        if event.schema_version < SCHEMA_VERSION:
            document = _older_document(data)
            if document is not None:
                return cls.model_validate(upcast_envelope(document))
        return event


def _upcast_v1(document: dict[str, Any]) -> dict[str, Any]:
    """1 → 2: version 2 added the span's W3C ``trace_flags`` (unknown for a version 1
    envelope; readers take it as sampled) and its ``tracestate``."""
    return {"trace_flags": None, "tracestate": "", **document}


def _upcast_v2(document: dict[str, Any]) -> dict[str, Any]:
    """2 → 3: version 3 only widened the system names; a version 2 envelope is one."""
    return dict(document)


#: ``ENVELOPE_UPCASTERS[v]`` turns a version ``v`` envelope into version ``v + 1``.
ENVELOPE_UPCASTERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _upcast_v1,
    2: _upcast_v2,
}


def upcast_envelope(document: Mapping[str, Any]) -> dict[str, Any]:
    """An envelope document of an older version in the current shape (a copy).

    ``schema_version`` keeps the version its producer wrote (the lineage shows who
    still sends an old one). A version with no upcaster is left as it is.
    """
    out = dict(document)
    version = out.get("schema_version", SCHEMA_VERSION)
    while isinstance(version, int) and version in ENVELOPE_UPCASTERS:
        out = ENVELOPE_UPCASTERS[version](out)
        version += 1
    return out


def _older_document(data: bytes | str) -> dict[str, Any] | None:
    """``data`` as a dict when it is an envelope of a version with an upcaster."""
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    version = document.get("schema_version")
    return document if isinstance(version, int) and version in ENVELOPE_UPCASTERS else None
