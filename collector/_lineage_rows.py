"""Conversions between envelopes, Arrow batches and the JSON shapes of the control API.

Building one Arrow table per batch (column by column) is what keeps ``write_batch``
fast: DuckDB scans it in bulk instead of binding parameters row by row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec
import pyarrow as pa
import pydantic_core

from tracing import (
    MAX_ATTEMPT,
    MAX_ERROR_MESSAGE,
    MAX_ID_LENGTH,
    MAX_PAYLOAD_BYTES,
    MAX_TIME,
    MAX_TRACESTATE_LENGTH,
    MIN_TIME,
    SCHEMA_VERSION,
    Event,
    Reason,
    Status,
    System,
    check_envelope_bounds,
    mask_payload,
)

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_FIELDS",
    "SUMMARY_COLUMNS",
    "EnvelopeColumns",
    "batch_table",
    "customer_name_of",
    "event_dict",
    "iso",
    "money",
    "payload_json",
    "summary_dict",
]

_CENT = Decimal("0.01")
_TS = pa.timestamp("us", tz="UTC")

#: Columns of the ``events`` table, in table order.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "correlation_id",
    "causation_id",
    "trace_id",
    "span_id",
    "idempotency_key",
    "source",
    "target",
    "kind",
    "step",
    "entity_type",
    "entity_id",
    "status",
    "attempt",
    "event_time",
    "recorded_at",
    "ingested_at",
    "duration_ms",
    "amount",
    "currency",
    "customer_id",
    "schema_version",
    "payload",
    "error_reason",
    "error_message",
    "error_retriable",
    "error_status",
    "error_type",
    "replay_of",
    "replay_id",
    "trace_flags",
    "tracestate",
)

#: Event fields as the control API returns them (the envelope's names).
EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "correlation_id",
    "causation_id",
    "trace_id",
    "span_id",
    "trace_flags",
    "tracestate",
    "idempotency_key",
    "source",
    "target",
    "kind",
    "step",
    "entity_type",
    "entity_id",
    "status",
    "attempt",
    "event_time",
    "recorded_at",
    "duration_ms",
    "amount",
    "currency",
    "customer_id",
    "payload",
    "error",
    "replay_of",
    "replay_id",
)

#: Summary fields of a transaction, as the control API returns them.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "correlation_id",
    "order_ref",
    "customer_id",
    "customer_name",
    "amount",
    "currency",
    "state",
    "started_at",
    "updated_at",
    "last_kind",
    "last_system",
    "last_status",
    "event_count",
    "failed_count",
    "dead_letter_count",
)


def _dumps(payload: Mapping[str, Any]) -> str:
    # pydantic-core's encoder is several times faster than the json module and
    # writes Decimal, datetime and enums the way the envelope's own JSON does.
    return pydantic_core.to_json(payload, fallback=str).decode()


def _has_unmasked_email(text: str) -> bool:
    # An address nobody masked has a word character right before the "@"; a
    # masked one reads "j***@acme.com". Checking each "@" keeps this linear.
    at = text.find("@")
    while at != -1:
        if at > 0 and (text[at - 1].isalnum() or text[at - 1] in "._%+-"):
            return True
        at = text.find("@", at + 1)
    return False


def payload_json(payload: Mapping[str, Any]) -> str:
    """The stored form of a payload: compact JSON.

    Producers mask payloads when they build the envelope; masking every payload
    again here would cost more than the whole insert, so the store only checks
    for the commonest leak (a plain e-mail address) and masks the payload if found.
    """
    text = _dumps(payload)
    if _has_unmasked_email(text):
        text = _dumps(mask_payload(payload))
    return text


def customer_name_of(payload: Mapping[str, Any]) -> str | None:
    """``payload["customer"]["name"]`` or ``payload["customer_name"]`` when present."""
    customer = payload.get("customer")
    if isinstance(customer, Mapping):
        name = customer.get("name")
        if isinstance(name, str) and name.strip():
            return name
    name = payload.get("customer_name")
    return name if isinstance(name, str) and name.strip() else None


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_CENT, rounding=ROUND_HALF_EVEN)


def batch_table(events: Sequence[Event], ingested_at: datetime) -> pa.Table:
    """One Arrow table for a batch: the ``events`` columns plus ``customer_name``."""
    errors = [e.error for e in events]
    n = len(events)
    columns: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "correlation_id": pa.array([e.correlation_id for e in events], pa.string()),
        "causation_id": pa.array([e.causation_id for e in events], pa.string()),
        "trace_id": pa.array([e.trace_id for e in events], pa.string()),
        "span_id": pa.array([e.span_id for e in events], pa.string()),
        "idempotency_key": pa.array([e.idempotency_key for e in events], pa.string()),
        "source": pa.array([e.source.value for e in events], pa.string()),
        "target": pa.array(
            [None if e.target is None else e.target.value for e in events], pa.string()
        ),
        "kind": pa.array([e.kind for e in events], pa.string()),
        "step": pa.array([e.step for e in events], pa.string()),
        "entity_type": pa.array([e.entity_type for e in events], pa.string()),
        "entity_id": pa.array([e.entity_id for e in events], pa.string()),
        "status": pa.array([e.status.value for e in events], pa.string()),
        "attempt": pa.array([e.attempt for e in events], pa.int32()),
        "event_time": pa.array([e.event_time for e in events], _TS),
        "recorded_at": pa.array([e.recorded_at for e in events], _TS),
        "ingested_at": pa.array([ingested_at] * n, _TS),
        "duration_ms": pa.array([e.duration_ms for e in events], pa.float64()),
        "amount": pa.array([_cents(e.amount) for e in events], pa.decimal128(18, 2)),
        "currency": pa.array([e.currency for e in events], pa.string()),
        "customer_id": pa.array([e.customer_id for e in events], pa.string()),
        "schema_version": pa.array([e.schema_version for e in events], pa.int32()),
        "payload": pa.array([payload_json(e.payload) for e in events], pa.string()),
        "error_reason": pa.array(
            [None if x is None else x.reason.value for x in errors], pa.string()
        ),
        "error_message": pa.array([None if x is None else x.message for x in errors], pa.string()),
        "error_retriable": pa.array(
            [None if x is None else x.retriable for x in errors], pa.bool_()
        ),
        "error_status": pa.array(
            [None if x is None else x.status_code for x in errors], pa.int32()
        ),
        "error_type": pa.array([None if x is None else x.error_type for x in errors], pa.string()),
        "replay_of": pa.array([e.replay_of for e in events], pa.string()),
        "replay_id": pa.array([e.replay_id for e in events], pa.string()),
        "trace_flags": pa.array([e.trace_flags for e in events], pa.uint8()),
        "tracestate": pa.array([e.tracestate or None for e in events], pa.string()),
        "customer_name": pa.array([customer_name_of(e.payload) for e in events], pa.string()),
    }
    return pa.table(columns)


class _Error(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason
    message: str
    retriable: bool = False
    status_code: int | None = None
    error_type: str | None = None


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """The envelope's scalar fields; the payload stays the JSON bytes it came as.

    Every default that ``Event`` fills in by itself (a new event ID, "now") is
    ``None`` here, so such a body takes the exact ``Event`` path instead.
    """

    correlation_id: str
    idempotency_key: str
    source: System
    kind: str
    step: str
    entity_type: str
    entity_id: str
    event_id: str | None = None
    causation_id: str | None = None
    trace_id: str = ""
    span_id: str = ""
    trace_flags: int | None = None
    tracestate: str = ""
    target: System | None = None
    status: Status = Status.OK
    attempt: int = 1
    event_time: datetime | None = None
    recorded_at: datetime | None = None
    duration_ms: float | None = None
    amount: Decimal | None = None
    currency: str | None = None
    customer_id: str | None = None
    schema_version: int = SCHEMA_VERSION
    payload: msgspec.Raw = msgspec.Raw(b"{}")
    error: _Error | None = None
    replay_of: str | None = None
    replay_id: str | None = None


class _Customer(msgspec.Struct):
    name: object = None


class _PayloadPeek(msgspec.Struct):
    """The only payload fields the store reads (for ``customer_name``)."""

    customer: object = None
    customer_name: object = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_PEEK = msgspec.json.Decoder(_PayloadPeek)


def _kind_ok(kind: str) -> bool:
    # Event's own rule for kinds: "entity.action", no spaces.
    return "." in kind and kind == kind.strip() and " " not in kind


_FAST_AMOUNT = Decimal(10) ** 16 - 1


def _fast_in_bounds(env: _Envelope, event_time: datetime, recorded_at: datetime) -> bool:
    """Whether ``env`` is well inside the envelope's bounds (``tracing._bounds``);
    anything else takes the exact path, which names the bound it breaks."""
    amount = env.amount
    if amount is not None and abs(amount) >= _FAST_AMOUNT:
        return False
    if not (MIN_TIME <= event_time < MAX_TIME and MIN_TIME <= recorded_at < MAX_TIME):
        return False
    if not (1 <= env.attempt <= MAX_ATTEMPT and 0 <= env.schema_version <= MAX_ATTEMPT):
        return False
    duration = env.duration_ms
    if duration is not None and not 0 <= duration < float("inf"):
        return False
    err = env.error
    if err is not None and (
        len(err.message) > MAX_ERROR_MESSAGE
        or (err.status_code is not None and not 0 <= err.status_code <= 999)
        or (err.error_type is not None and len(err.error_type) > MAX_ID_LENGTH)
    ):
        return False
    longest = max(
        len(env.correlation_id),
        len(env.idempotency_key),
        len(env.kind),
        len(env.step),
        len(env.entity_type),
        len(env.entity_id),
        len(env.event_id or ""),
        len(env.causation_id or ""),
        len(env.trace_id),
        len(env.span_id),
        len(env.currency or ""),
        len(env.customer_id or ""),
        len(env.replay_of or ""),
        len(env.replay_id or ""),
    )
    return longest <= MAX_ID_LENGTH


def _peek_customer_name(raw: bytes) -> str | None:
    if b'"customer' not in raw:
        return None
    try:
        peek = _PEEK.decode(raw)
    except msgspec.MsgspecError:
        return None
    customer = peek.customer
    if isinstance(customer, Mapping):
        name = customer.get("name")
        if isinstance(name, str) and name.strip():
            return name
    name = peek.customer_name
    return name if isinstance(name, str) and name.strip() else None


def _fast_payload(raw: bytes) -> str | None:
    """The stored text of a raw payload, or ``None`` when it needs the exact path.

    ``None`` for anything that is not a JSON object, and for payloads with
    ``\\u`` escapes (an escaped "@" would hide an address from the PII check).
    """
    if raw[:1] != b"{" or b"\\u" in raw:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    if _has_unmasked_email(text):
        # Rare: a producer that did not mask. The exact path parses, masks and
        # stores the masked payload.
        return None
    return text


class EnvelopeColumns:
    """A batch of envelopes as the ``events`` columns (plus ``customer_name``).

    The ingest hot path: ``add_json`` decodes a message body straight into
    column lists with msgspec (the payload is kept as the JSON text it arrived
    as, never turned into Python objects), and falls back to ``Event`` for
    anything the fast decoder does not accept as-is, so every body is validated
    exactly as ``Event.model_validate_json`` would validate it.
    """

    __slots__ = ("_cols", "_ids")

    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {name: [] for name in _BUILT}
        self._ids: list[str] = self._cols["event_id"]

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def event_ids(self) -> list[str]:
        """Event IDs in the order added (duplicates included)."""
        return self._ids

    def column(self, name: str) -> Sequence[Any]:
        """The values of column ``name`` in the order added (read-only view)."""
        return self._cols[name]

    def last(self, name: str) -> Any:
        """The value of column ``name`` in the row added last."""
        return self._cols[name][-1]

    def row_values(self, index: int) -> dict[str, Any]:
        """Row ``index`` as column name to value."""
        return {name: values[index] for name, values in self._cols.items()}

    def drop_last(self) -> None:
        """Take back the row added last (it failed a check made after decoding)."""
        for values in self._cols.values():
            values.pop()

    def add_json(self, data: bytes) -> Event | None:
        """Add one message body; returns the ``Event`` when the exact path took it.

        Raises ``pydantic.ValidationError`` exactly when ``Event.from_json`` would,
        and ``EnvelopeBoundsError`` for an envelope out of the lineage's bounds
        (the fast path takes only bodies well inside them).
        """
        try:
            env = _ENVELOPE.decode(data)
        except msgspec.MsgspecError:
            env = None
        if env is not None and self._add_fast(env):
            return None
        event = Event.model_validate_json(data)
        check_envelope_bounds(event)
        self.add_event(event)
        return event

    def _add_fast(self, env: _Envelope) -> bool:
        event_time, recorded_at, amount = env.event_time, env.recorded_at, env.amount
        if (
            env.event_id is None
            or event_time is None
            or recorded_at is None
            or event_time.tzinfo is None
            or recorded_at.tzinfo is None
            or env.attempt < 1
            or not _kind_ok(env.kind)
            or (amount is not None and not amount.is_finite())
            or (env.trace_flags is not None and not 0 <= env.trace_flags <= 255)
            or len(env.tracestate) > MAX_TRACESTATE_LENGTH
            or not _fast_in_bounds(env, event_time, recorded_at)
        ):
            return False
        raw = bytes(env.payload)
        if len(raw) > MAX_PAYLOAD_BYTES:
            return False
        payload = _fast_payload(raw)
        if payload is None:
            return False
        c = self._cols
        c["event_id"].append(env.event_id)
        c["correlation_id"].append(env.correlation_id)
        c["causation_id"].append(env.causation_id)
        c["trace_id"].append(env.trace_id)
        c["span_id"].append(env.span_id)
        c["idempotency_key"].append(env.idempotency_key)
        c["source"].append(env.source.value)
        c["target"].append(None if env.target is None else env.target.value)
        c["kind"].append(env.kind)
        c["step"].append(env.step)
        c["entity_type"].append(env.entity_type)
        c["entity_id"].append(env.entity_id)
        c["status"].append(env.status.value)
        c["attempt"].append(env.attempt)
        c["event_time"].append(event_time)
        c["recorded_at"].append(recorded_at)
        c["duration_ms"].append(env.duration_ms)
        c["amount"].append(_cents(amount))
        c["currency"].append(env.currency)
        c["customer_id"].append(env.customer_id)
        c["schema_version"].append(env.schema_version)
        c["payload"].append(payload)
        err = env.error
        c["error_reason"].append(None if err is None else err.reason.value)
        c["error_message"].append(None if err is None else err.message)
        c["error_retriable"].append(None if err is None else err.retriable)
        c["error_status"].append(None if err is None else err.status_code)
        c["error_type"].append(None if err is None else err.error_type)
        c["replay_of"].append(env.replay_of)
        c["replay_id"].append(env.replay_id)
        c["trace_flags"].append(env.trace_flags)
        c["tracestate"].append(env.tracestate or None)
        c["customer_name"].append(_peek_customer_name(raw))
        return True

    def add_event(self, event: Event) -> None:
        """Add an already validated envelope."""
        c = self._cols
        for name in _PLAIN:
            c[name].append(getattr(event, name))
        c["source"].append(event.source.value)
        c["target"].append(None if event.target is None else event.target.value)
        c["status"].append(event.status.value)
        c["amount"].append(_cents(event.amount))
        c["tracestate"].append(event.tracestate or None)
        c["payload"].append(payload_json(event.payload))
        err = event.error
        c["error_reason"].append(None if err is None else err.reason.value)
        c["error_message"].append(None if err is None else err.message)
        c["error_retriable"].append(None if err is None else err.retriable)
        c["error_status"].append(None if err is None else err.status_code)
        c["error_type"].append(None if err is None else err.error_type)
        c["customer_name"].append(customer_name_of(event.payload))

    def subset(self, start: int, stop: int) -> EnvelopeColumns:
        """A new batch of rows ``start`` to ``stop`` (copies of the column lists)."""
        part = EnvelopeColumns()
        part._cols = {name: values[start:stop] for name, values in self._cols.items()}
        part._ids = part._cols["event_id"]
        return part

    def extend_events(self, events: Sequence[Event]) -> None:
        """Add many envelopes."""
        for event in events:
            self.add_event(event)

    def table(self, ingested_at: datetime, *, unique: bool = True) -> tuple[pa.Table, int]:
        """(the Arrow batch, rows left out as repeats of an event ID earlier in it).

        With ``unique`` the first of each event ID is kept, as ``write_batch`` does.
        """
        c = self._cols
        keep: list[int] | None = None
        if unique and len(set(self._ids)) != len(self._ids):
            seen: set[str] = set()
            keep = []
            for i, event_id in enumerate(self._ids):
                if event_id not in seen:
                    seen.add(event_id)
                    keep.append(i)
        n = len(self._ids) if keep is None else len(keep)
        arrays: dict[str, pa.Array] = {}
        for name in _BUILT:
            values = c[name] if keep is None else [c[name][i] for i in keep]
            arrays[name] = pa.array(values, _TYPES[name])
            if name == "recorded_at":
                arrays["ingested_at"] = pa.array([ingested_at] * n, _TS)
        table = pa.table({name: arrays[name] for name in (*EVENT_COLUMNS, "customer_name")})
        return table, len(self._ids) - n


_TYPES: dict[str, pa.DataType] = {
    "event_id": pa.string(),
    "correlation_id": pa.string(),
    "causation_id": pa.string(),
    "trace_id": pa.string(),
    "span_id": pa.string(),
    "idempotency_key": pa.string(),
    "source": pa.string(),
    "target": pa.string(),
    "kind": pa.string(),
    "step": pa.string(),
    "entity_type": pa.string(),
    "entity_id": pa.string(),
    "status": pa.string(),
    "attempt": pa.int32(),
    "event_time": _TS,
    "recorded_at": _TS,
    "duration_ms": pa.float64(),
    "amount": pa.decimal128(18, 2),
    "currency": pa.string(),
    "customer_id": pa.string(),
    "schema_version": pa.int32(),
    "payload": pa.string(),
    "error_reason": pa.string(),
    "error_message": pa.string(),
    "error_retriable": pa.bool_(),
    "error_status": pa.int32(),
    "error_type": pa.string(),
    "replay_of": pa.string(),
    "replay_id": pa.string(),
    "trace_flags": pa.uint8(),
    "tracestate": pa.string(),
    "customer_name": pa.string(),
}
#: Columns built from the envelope (``ingested_at`` is the batch's own).
_BUILT: tuple[str, ...] = tuple(_TYPES)
#: Columns copied from the ``Event`` attribute of the same name.
_PLAIN: tuple[str, ...] = (
    "event_id",
    "correlation_id",
    "causation_id",
    "trace_id",
    "span_id",
    "idempotency_key",
    "kind",
    "step",
    "entity_type",
    "entity_id",
    "attempt",
    "event_time",
    "recorded_at",
    "duration_ms",
    "currency",
    "customer_id",
    "schema_version",
    "replay_of",
    "replay_id",
    "trace_flags",
)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the envelope's own JSON writes it."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Decimal | None) -> str | None:
    """A string decimal with two places (``"1250.00"``), or ``None``."""
    return None if value is None else str(_cents(value))


def summary_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A transaction summary row (in ``SUMMARY_COLUMNS`` order) as API JSON."""
    out = dict(zip(SUMMARY_COLUMNS, row, strict=True))
    out["amount"] = money(out["amount"])
    out["started_at"] = iso(out["started_at"])
    out["updated_at"] = iso(out["updated_at"])
    return out


def event_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored ``events`` row (by column name) as the API's event JSON."""
    error: dict[str, Any] | None = None
    if row["error_reason"] is not None:
        error = {
            "reason": row["error_reason"],
            "message": row["error_message"],
            "retriable": bool(row["error_retriable"]),
            "status_code": row["error_status"],
            "error_type": row["error_type"],
        }
    out: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        if name == "error":
            out["error"] = error
        elif name == "payload":
            raw = row["payload"]
            out["payload"] = json.loads(raw) if isinstance(raw, str) else (raw or {})
        elif name in ("event_time", "recorded_at"):
            out[name] = iso(row[name])
        elif name == "amount":
            out[name] = money(row[name])
        elif name == "tracestate":
            out[name] = row[name] or ""
        else:
            out[name] = row[name]
    return out
