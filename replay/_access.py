"""How replay reaches the lineage database: through the collector's writer.

:class:`LineageAccess` is the part of ``collector.lineage.AsyncLineage`` that
replay needs. Every write runs on the collector's one writer thread, in a
transaction, so replay's state changes never race the ingest pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import duckdb

from tracing import ErrorInfo, Event, Reason

__all__ = ["EVENT_COLUMNS", "LineageAccess", "event_from_row", "to_json"]

T = TypeVar("T")


class LineageAccess(Protocol):
    """Async access to the lineage database (``AsyncLineage`` satisfies it)."""

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` with a read cursor, off the event loop."""
        ...

    async def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` in a transaction on the writer, off the event loop."""
        ...


EVENT_COLUMNS = (
    "event_id, correlation_id, causation_id, trace_id, span_id, idempotency_key, source, "
    "target, kind, step, entity_type, entity_id, status, attempt, event_time, recorded_at, "
    "duration_ms, amount, currency, customer_id, schema_version, payload, error_reason, "
    "error_message, error_retriable, error_status, error_type, replay_of, replay_id, "
    "trace_flags, tracestate"
)


def event_from_row(row: Sequence[Any]) -> Event:
    """An :class:`Event` from a row selected with :data:`EVENT_COLUMNS`."""
    (
        event_id,
        correlation_id,
        causation_id,
        trace_id,
        span_id,
        idempotency_key,
        source,
        target,
        kind,
        step,
        entity_type,
        entity_id,
        status,
        attempt,
        event_time,
        recorded_at,
        duration_ms,
        amount,
        currency,
        customer_id,
        schema_version,
        payload,
        error_reason,
        error_message,
        error_retriable,
        error_status,
        error_type,
        replay_of,
        replay_id,
        trace_flags,
        tracestate,
    ) = row
    error = None
    if error_reason is not None:
        error = ErrorInfo(
            reason=Reason(error_reason),
            message=error_message or "",
            retriable=bool(error_retriable),
            status_code=error_status,
            error_type=error_type,
        )
    return Event(
        event_id=event_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        trace_id=trace_id or "",
        span_id=span_id or "",
        trace_flags=trace_flags,
        tracestate=tracestate or "",
        idempotency_key=idempotency_key,
        source=source,
        target=target,
        kind=kind,
        step=step,
        entity_type=entity_type,
        entity_id=entity_id,
        status=status,
        attempt=attempt,
        event_time=event_time,
        recorded_at=recorded_at,
        duration_ms=duration_ms,
        amount=amount,
        currency=currency,
        customer_id=customer_id,
        schema_version=schema_version,
        payload=json.loads(payload) if isinstance(payload, str) else (payload or {}),
        error=error,
        replay_of=replay_of,
        replay_id=replay_id,
    )


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def to_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces; decimals and times as strings)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)
