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

from tracing import ENVELOPE, Event

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


#: The envelope's columns of ``events``, for a SELECT list (from the envelope's layout).
EVENT_COLUMNS = ", ".join(ENVELOPE.names)


def event_from_row(row: Sequence[Any]) -> Event:
    """An :class:`Event` from a row selected with :data:`EVENT_COLUMNS`."""
    event = ENVELOPE.event(dict(zip(ENVELOPE.names, row, strict=True)))
    assert isinstance(event, Event)
    return event


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def to_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces; decimals and times as strings)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)
