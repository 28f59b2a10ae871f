"""The JSON shapes of the control API, from stored rows.

The envelope's columnar form (what transports decode into and the store inserts)
is ``collector._columns``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tracing import ENVELOPE, EnvelopeLayout

from ._columns import cents
from ._event_schema import table_columns

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_FIELDS",
    "SUMMARY_COLUMNS",
    "event_dict",
    "iso",
    "money",
    "summary_dict",
]

#: Columns of the ``events`` table (the envelope's, then ``ingested_at``).
EVENT_COLUMNS: tuple[str, ...] = table_columns(ENVELOPE)

#: Event fields as the control API returns them (the envelope's names).
EVENT_FIELDS: tuple[str, ...] = ENVELOPE.fields

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


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the envelope's own JSON writes it."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Decimal | None) -> str | None:
    """A string decimal with two places (``"1250.00"``), or ``None``."""
    return None if value is None else str(cents(value))


def summary_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A transaction summary row (in ``SUMMARY_COLUMNS`` order) as API JSON."""
    out = dict(zip(SUMMARY_COLUMNS, row, strict=True))
    out["amount"] = money(out["amount"])
    out["started_at"] = iso(out["started_at"])
    out["updated_at"] = iso(out["updated_at"])
    return out


def _default(layout: EnvelopeLayout, name: str) -> Any:
    """The model's default for a field a row lacks (``None`` where the model makes one)."""
    info = layout.model.model_fields[name]
    if info.default_factory is not None or info.is_required():
        return None
    return info.default


def event_dict(row: Mapping[str, Any], layout: EnvelopeLayout = ENVELOPE) -> dict[str, Any]:
    """A stored ``events`` row (by column name) as the API's event JSON.

    Every field of the envelope, under its own name: a nested model as an object
    (``None`` when absent), times in ISO 8601, amounts as two-place decimal strings.
    """
    fields = layout.fields_of(row)
    out: dict[str, Any] = {}
    for name in layout.fields:
        value = fields.get(name, _default(layout, name))
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, Decimal):
            value = money(value)
        out[name] = value
    return out
