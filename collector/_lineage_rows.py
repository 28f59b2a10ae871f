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

import pyarrow as pa
import pydantic_core

from tracing import Event, mask_payload

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_FIELDS",
    "SUMMARY_COLUMNS",
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
)

#: Event fields as the control API returns them (the envelope's names).
EVENT_FIELDS: tuple[str, ...] = (
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
        "customer_name": pa.array([customer_name_of(e.payload) for e in events], pa.string()),
    }
    return pa.table(columns)


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
        else:
            out[name] = row[name]
    return out
