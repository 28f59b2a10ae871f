"""Dead letters for what the lineage cannot take: bad raw messages and bad rows.

Nothing that reaches the collector is dropped. A raw message that does not
decode or validate becomes an ``event.invalid`` event (``invalid_event``); so
does a decoded envelope that breaks the envelope's bounds or that the store
cannot convert or insert (``row_dead_letter``). Either is dead-lettered with
reason ``validation`` and carries the raw message or envelope (masked,
truncated), so an operator sees what arrived and why it was refused.

Their event IDs derive from what arrived, so a redelivery is stored once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from tracing import (
    ENVELOPE,
    MAX_PAYLOAD_BYTES,
    EnvelopeLayout,
    ErrorInfo,
    Event,
    Reason,
    Status,
    StoreError,
    System,
    envelope_bounds_error,
    is_system_name,
)

from ._columns import EnvelopeColumns, batch_table
from ._invalid_event import (
    _ERROR_LIMIT,
    _NAMESPACE,
    INVALID_KIND,
    invalid_event,
    masked_raw,
    safe_text,
)

__all__ = [
    "CONVERSION_ERRORS",
    "INVALID_KIND",
    "convert_column_rows",
    "convert_rows",
    "invalid_event",
    "is_row_error",
    "row_dead_letter",
]

#: What building a batch's Arrow table raises for a value the columns cannot hold
#: (pyarrow's ArrowInvalid is a ValueError, ArrowTypeError a TypeError, decimal's
#: InvalidOperation an ArithmeticError, a lone surrogate a UnicodeEncodeError).
CONVERSION_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    ArithmeticError,
    RecursionError,
)
#: DuckDB errors that a row's values cause (not the store being unavailable).
_ROW_ERRORS: tuple[type[Exception], ...] = (duckdb.DataError, duckdb.InvalidInputException)

#: A refused envelope keeps more of itself than a raw message (it is a whole row).
_ROW_RAW_LIMIT = MAX_PAYLOAD_BYTES // 4


def _envelope_bytes(row: Event | Mapping[str, Any]) -> bytes:
    if isinstance(row, Event):
        try:
            return row.to_json()
        except (ValueError, TypeError, RecursionError):
            # A lone surrogate or an unserialisable payload: fall through to ASCII
            # JSON, which escapes surrogates and writes anything else as its text.
            row = row.model_dump(mode="python")
    try:
        return json.dumps(dict(row), default=str, ensure_ascii=True).encode()
    except (ValueError, TypeError, RecursionError):
        return repr(row).encode("utf-8", errors="backslashreplace")


def _field(row: Event | Mapping[str, Any], name: str) -> Any:
    value = getattr(row, name, None) if isinstance(row, Event) else row.get(name)
    return str(value) if isinstance(value, System) else value


def row_dead_letter(
    row: Event | Mapping[str, Any], problem: str, *, error_type: str | None = None
) -> Event:
    """The ``event.invalid`` dead letter for an envelope the lineage cannot store.

    ``row`` is the envelope, or its lineage row (column name to value). The dead
    letter stays in the envelope's transaction when the correlation ID is usable,
    names the refused event (ID, kind, source) and keeps the envelope's JSON
    (masked, truncated) under ``payload.raw``; its error is ``validation``.
    """
    raw = _envelope_bytes(row)
    event_id = str(_field(row, "event_id") or "")
    digest = hashlib.sha256(
        event_id.encode("utf-8", errors="surrogatepass") + b"\0" + raw
    ).hexdigest()
    source = _field(row, "source")
    target = source if is_system_name(source) else None
    message = problem[:_ERROR_LIMIT]
    dead = Event(
        event_id=str(uuid.uuid5(_NAMESPACE, f"row:{digest}")),
        correlation_id=safe_text(_field(row, "correlation_id")) or f"invalid-{digest[:32]}",
        causation_id=safe_text(_field(row, "causation_id")),
        idempotency_key=f"invalid:row:{digest}",
        source=System.INTERLOCK,
        target=target,
        kind=INVALID_KIND,
        step="collector.validate",
        entity_type="event",
        entity_id=digest[:16],
        status=Status.DEAD_LETTERED,
        customer_id=safe_text(_field(row, "customer_id")),
        payload={
            "raw": masked_raw(raw, _ROW_RAW_LIMIT),
            "size": len(raw),
            "errors": message,
            "refused_event_id": safe_text(event_id) or digest[:32],
            "refused_kind": safe_text(_field(row, "kind")),
            "refused_source": safe_text(source),
        },
        error=ErrorInfo(
            reason=Reason.VALIDATION,
            message=message,
            retriable=False,
            error_type=error_type or "EnvelopeBoundsError",
        ),
    )
    # Built only from bounded, checked parts; a failure here is a defect of this module.
    assert envelope_bounds_error(dead) is None, envelope_bounds_error(dead)
    return dead


def is_row_error(exc: StoreError) -> bool:
    """Whether a failed lineage write was caused by the values of a row."""
    return isinstance(exc.__cause__, _ROW_ERRORS)


def convert_rows(
    events: Sequence[Event], ingested_at: datetime, layout: EnvelopeLayout = ENVELOPE
) -> tuple[list[tuple[pa.Table, str]], list[Event]]:
    """Each envelope as a one-row Arrow table, or its dead letter when it cannot be one.

    Returns (table and event ID of each row that converts, dead letters of the rest).
    """
    tables: list[tuple[pa.Table, str]] = []
    dead: list[Event] = []
    for event in events:
        problem = envelope_bounds_error(event)
        if problem is not None:
            dead.append(row_dead_letter(event, problem))
            continue
        try:
            tables.append((batch_table([event], ingested_at, layout), event.event_id))
        except CONVERSION_ERRORS as exc:
            dead.append(
                row_dead_letter(
                    event,
                    f"the lineage cannot convert this row: {type(exc).__name__}: {exc}",
                    error_type=type(exc).__name__,
                )
            )
    return tables, dead


def convert_column_rows(
    columns: EnvelopeColumns, ingested_at: datetime
) -> tuple[list[tuple[pa.Table, str]], list[Event], int]:
    """``convert_rows`` for a batch decoded into columns (first of each event ID).

    Returns (tables, dead letters, rows left out as repeats of an earlier event ID).
    """
    tables: list[tuple[pa.Table, str]] = []
    dead: list[Event] = []
    seen: set[str] = set()
    for i, event_id in enumerate(columns.event_ids):
        if event_id in seen:
            continue
        seen.add(event_id)
        try:
            table, _ = columns.subset(i, i + 1).table(ingested_at)
        except CONVERSION_ERRORS as exc:
            dead.append(
                row_dead_letter(
                    columns.row_values(i),
                    f"the lineage cannot convert this row: {type(exc).__name__}: {exc}",
                    error_type=type(exc).__name__,
                )
            )
            continue
        tables.append((table, event_id))
    return tables, dead, len(columns) - len(seen)
