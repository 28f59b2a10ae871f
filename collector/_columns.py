"""A batch of envelopes in the columnar form of the envelope's layout.

The ingest hot path of every transport: ``EnvelopeColumns.add_json`` decodes a message
body with a msgspec struct derived from the envelope model and keeps the payload as the
JSON text it came as; ``table`` builds the Arrow batch the lineage inserts. Nothing here
knows the store: the columns are the layout's (``tracing.EnvelopeLayout``), plus
``customer_name`` (read from the payload) and the batch's ``ingested_at``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import pyarrow as pa
import pydantic_core
from pydantic import BaseModel

from tracing import (
    ENVELOPE,
    MAX_ATTEMPT,
    MAX_ERROR_MESSAGE,
    MAX_ID_LENGTH,
    MAX_PAYLOAD_BYTES,
    MAX_TIME,
    MIN_TIME,
    SCHEMA_VERSION,
    Column,
    EnvelopeLayout,
    FieldSpec,
    check_envelope_bounds,
    field_specs,
    mask_payload,
)

from ._event_schema import arrow_types, table_columns

__all__ = ["EnvelopeColumns", "batch_table", "cents", "customer_name_of", "payload_json"]

_CENT = Decimal("0.01")


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


def cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_CENT, rounding=ROUND_HALF_EVEN)


def batch_table(
    events: Sequence[BaseModel], ingested_at: datetime, layout: EnvelopeLayout = ENVELOPE
) -> pa.Table:
    """One Arrow table for a batch: the ``events`` columns plus ``customer_name``."""
    columns = EnvelopeColumns(layout)
    columns.extend_events(events)
    return columns.table(ingested_at, unique=False)[0]


# -- the fast decoder: msgspec structs derived from the envelope model ---------------

#: Fields whose validators the fast path repeats (``_add_fast``); a model that
#: validates any other field by code of its own is decoded by pydantic alone.
_FAST_CHECKED = frozenset({"kind", "event_time", "recorded_at", "attempt"})

#: Constraints msgspec checks as pydantic does (``annotated_types`` and pydantic's own).
_META_KEYS = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")


def _meta(spec: FieldSpec) -> msgspec.Meta | None:
    """The field's constraints as msgspec's; ``None`` when one has no equivalent."""
    kwargs: dict[str, Any] = {}
    for item in spec.constraints:
        found = {k: getattr(item, k) for k in _META_KEYS if getattr(item, k, None) is not None}
        if not found:
            return None
        kwargs.update(found)
    return msgspec.Meta(**kwargs) if kwargs else msgspec.Meta()


def _struct(model: type[BaseModel], name: str, top: bool) -> type[msgspec.Struct] | None:
    """A msgspec struct for ``model``: the same fields, types and constraints.

    A default the model makes itself (a new event ID, "now") is ``None`` here, so a
    body without it takes the exact path; the payload stays raw JSON bytes.
    ``None`` when the model has a rule msgspec cannot repeat.
    """
    fields: list[tuple[Any, ...]] = []
    for spec in field_specs(model):
        if spec.validated and not (top and spec.name in _FAST_CHECKED):
            return None
        meta = _meta(spec)
        if meta is None:
            return None
        kind: Any = spec.annotation
        if spec.model is not None:
            inner = _struct(spec.model, f"{name}_{spec.name}", top=False)
            if inner is None:
                return None
            kind = inner
        elif top and spec.name == "payload":
            fields.append((spec.name, msgspec.Raw, msgspec.Raw(b"{}")))
            continue
        kind = Annotated[kind, meta]
        if spec.optional or spec.factory:
            kind = kind | None
        if spec.required:
            fields.append((spec.name, kind))
        else:
            fields.append((spec.name, kind, spec.default))
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True)


def _getter(column: Column) -> Callable[[Any], Any]:
    """Reads ``column``'s stored value from an envelope (a model or a fast struct)."""
    if len(column.path) == 1:
        get: Callable[[Any], Any] = attrgetter(column.path[0])
    else:
        outer, inner = attrgetter(column.path[0]), attrgetter(column.path[1])

        def get(obj: Any) -> Any:
            value = outer(obj)
            return None if value is None else inner(value)

    if column.enum:
        plain = get

        def get(obj: Any) -> Any:
            value = plain(obj)
            return None if value is None else value.value

    elif column.type == "decimal":
        number = get

        def get(obj: Any) -> Any:
            return cents(number(obj))

    elif column.empty_as_null:
        text = get

        def get(obj: Any) -> Any:
            return text(obj) or None

    return get


class _Codec:
    """What ``EnvelopeColumns`` needs of one layout, built once per layout."""

    def __init__(self, layout: EnvelopeLayout) -> None:
        self.layout = layout
        struct = _struct(layout.model, "_Envelope", top=True)
        #: ``None``: every body takes the exact (pydantic) path.
        self.decoder = None if struct is None else msgspec.json.Decoder(struct)
        #: The getter of every column but the payload.
        self.getter = {c.name: _getter(c) for c in layout.columns if c.name != "payload"}
        ids = [name for name in layout.identifiers]
        self.identifiers: Callable[[Any], tuple[Any, ...]] = attrgetter(*ids)


@cache
def _codec(layout: EnvelopeLayout) -> _Codec:
    return _Codec(layout)


class _PayloadPeek(msgspec.Struct):
    """The only payload fields the store reads (for ``customer_name``)."""

    customer: object = None
    customer_name: object = None


_PEEK = msgspec.json.Decoder(_PayloadPeek)


def _kind_ok(kind: str) -> bool:
    # Event's own rule for kinds: "entity.action", no spaces.
    return "." in kind and kind == kind.strip() and " " not in kind


_FAST_AMOUNT = Decimal(10) ** 16 - 1


def _fast_in_bounds(
    env: Any, event_time: datetime, recorded_at: datetime, identifiers: tuple[Any, ...]
) -> bool:
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
    return all(value is None or len(value) <= MAX_ID_LENGTH for value in identifiers)


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

    The ingest hot path: ``add_json`` decodes a message body with msgspec into a
    struct derived from the envelope model (the payload is kept as the JSON text it
    arrived as, never turned into Python objects), and falls back to the model for
    anything the fast decoder does not accept as-is, so every body is validated
    exactly as ``Event.model_validate_json`` would validate it. Rows are kept as
    those envelopes; a column is read from all of them at once (``map`` over the
    layout's getters), which is what makes building the Arrow batch cheap.
    """

    __slots__ = ("_cache", "_codec", "_envs", "_names", "_payloads")

    def __init__(self, layout: EnvelopeLayout = ENVELOPE) -> None:
        self._codec = _codec(layout)
        #: One envelope per row: a fast struct or a model instance (same attributes).
        self._envs: list[Any] = []
        self._payloads: list[str] = []
        self._names: list[str | None] = []
        self._cache: dict[str, list[Any]] = {}

    @property
    def layout(self) -> EnvelopeLayout:
        """The envelope layout these columns follow."""
        return self._codec.layout

    def __len__(self) -> int:
        return len(self._envs)

    @property
    def event_ids(self) -> list[str]:
        """Event IDs in the order added (duplicates included)."""
        return self._column("event_id")

    def _column(self, name: str) -> list[Any]:
        if name == "payload":
            return self._payloads
        if name == "customer_name":
            return self._names
        values = self._cache.get(name)
        if values is None or len(values) != len(self._envs):
            values = list(map(self._codec.getter[name], self._envs))
            self._cache[name] = values
        return values

    def column(self, name: str) -> Sequence[Any]:
        """The values of column ``name`` in the order added (read-only view)."""
        return self._column(name)

    def last(self, name: str) -> Any:
        """The value of column ``name`` in the row added last."""
        if name in ("payload", "customer_name"):
            return self._column(name)[-1]
        return self._codec.getter[name](self._envs[-1])

    def row_values(self, index: int) -> dict[str, Any]:
        """Row ``index`` as column name to value."""
        env = self._envs[index]
        out = {name: get(env) for name, get in self._codec.getter.items()}
        out["payload"] = self._payloads[index]
        out["customer_name"] = self._names[index]
        return {name: out[name] for name in (*self.layout.names, "customer_name")}

    def drop_last(self) -> None:
        """Take back the row added last (it failed a check made after decoding)."""
        self._envs.pop()
        self._payloads.pop()
        self._names.pop()
        self._cache.clear()

    def add_json(self, data: bytes) -> BaseModel | None:
        """Add one message body; returns the envelope when the exact path took it.

        Raises ``pydantic.ValidationError`` exactly when ``Event.from_json`` would,
        and ``EnvelopeBoundsError`` for an envelope out of the lineage's bounds
        (the fast path takes only bodies well inside them).
        """
        decoder = self._codec.decoder
        env = None
        if decoder is not None:
            try:
                env = decoder.decode(data)
            except msgspec.MsgspecError:
                env = None
        if env is not None and self._add_fast(env):
            return None
        model = self._codec.layout.model
        reader = getattr(model, "from_json", model.model_validate_json)
        event = reader(data)
        check_envelope_bounds(event)  # type: ignore[arg-type]
        self.add_event(event)
        return event

    def _add_fast(self, env: Any) -> bool:
        event_time, recorded_at, amount = env.event_time, env.recorded_at, env.amount
        if (
            env.event_id is None
            or event_time is None
            or recorded_at is None
            or event_time.tzinfo is None
            or recorded_at.tzinfo is None
            or env.attempt < 1
            or env.schema_version != SCHEMA_VERSION  # an older one is upcast on the exact path
            or not _kind_ok(env.kind)
            or (amount is not None and not amount.is_finite())
            or not _fast_in_bounds(env, event_time, recorded_at, self._codec.identifiers(env))
        ):
            return False
        raw = bytes(env.payload)
        if len(raw) > MAX_PAYLOAD_BYTES:
            return False
        payload = _fast_payload(raw)
        if payload is None:
            return False
        env.payload = None  # the text below is what is kept
        self._envs.append(env)
        self._payloads.append(payload)
        self._names.append(_peek_customer_name(raw))
        return True

    def add_event(self, event: BaseModel) -> None:
        """Add an already validated envelope."""
        payload = event.payload  # type: ignore[attr-defined]
        self._envs.append(event)
        self._payloads.append(payload_json(payload))
        self._names.append(customer_name_of(payload))

    def subset(self, start: int, stop: int) -> EnvelopeColumns:
        """A new batch of rows ``start`` to ``stop``."""
        part = EnvelopeColumns(self.layout)
        part._envs = self._envs[start:stop]
        part._payloads = self._payloads[start:stop]
        part._names = self._names[start:stop]
        return part

    def extend_events(self, events: Sequence[BaseModel]) -> None:
        """Add many envelopes."""
        for event in events:
            self.add_event(event)

    def table(self, ingested_at: datetime, *, unique: bool = True) -> tuple[pa.Table, int]:
        """(the Arrow batch, rows left out as repeats of an event ID earlier in it).

        With ``unique`` the first of each event ID is kept, as ``write_batch`` does.
        """
        part = self
        ids = self.event_ids
        if unique and len(set(ids)) != len(ids):
            seen: set[str] = set()
            keep: list[int] = []
            for i, event_id in enumerate(ids):
                if event_id not in seen:
                    seen.add(event_id)
                    keep.append(i)
            part = EnvelopeColumns(self.layout)
            part._envs = [self._envs[i] for i in keep]
            part._payloads = [self._payloads[i] for i in keep]
            part._names = [self._names[i] for i in keep]
        n = len(part)
        types = arrow_types(self.layout)
        arrays = {name: pa.array(part._column(name), types[name]) for name in self.layout.names}
        arrays["ingested_at"] = pa.array([ingested_at] * n, types["ingested_at"])
        arrays["customer_name"] = pa.array(part._names, types["customer_name"])
        order = (*table_columns(self.layout), "customer_name")
        return pa.table({name: arrays[name] for name in order}), len(self) - n
