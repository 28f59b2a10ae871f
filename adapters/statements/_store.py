"""The batches: one row per file in the lineage database (``statement_batches``)."""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeVar

from ._models import Batch, Outcome

__all__ = ["BatchStore"]

T = TypeVar("T")

_DDL = """
CREATE TABLE IF NOT EXISTS statement_batches (
    batch_id VARCHAR PRIMARY KEY,
    checksum VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    format VARCHAR,
    outcome VARCHAR NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    line_count INTEGER NOT NULL,
    document VARCHAR NOT NULL
)
"""
_SUMMARY = ("lines",)


class _Lineage(Protocol):
    async def write(self, fn: Any) -> Any: ...

    async def read(self, fn: Any) -> Any: ...


class BatchStore:
    """Batches kept beside the events, so a lineage backup holds them too."""

    def __init__(self, lineage: _Lineage) -> None:
        self._lineage = lineage

    async def open(self) -> None:
        await self._lineage.write(lambda conn: conn.execute(_DDL))

    async def save(self, batch: Batch) -> None:
        doc = batch.as_dict()

        def work(conn: Any) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO statement_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    batch.batch_id,
                    batch.checksum,
                    batch.file_name,
                    batch.format,
                    batch.outcome.value,
                    batch.received_at,
                    batch.line_count,
                    json.dumps(doc),
                ],
            )

        await self._lineage.write(work)

    async def imported_with(self, checksum: str) -> str | None:
        """The batch that imported a file with this checksum, if one did."""

        def work(conn: Any) -> str | None:
            row = conn.execute(
                "SELECT batch_id FROM statement_batches WHERE checksum = ? AND outcome = ? "
                "ORDER BY received_at LIMIT 1",
                [checksum, Outcome.IMPORTED.value],
            ).fetchone()
            return None if row is None else str(row[0])

        found: str | None = await self._lineage.read(work)
        return found

    async def get(self, batch_id: str) -> dict[str, Any] | None:
        def work(conn: Any) -> str | None:
            row = conn.execute(
                "SELECT document FROM statement_batches WHERE batch_id = ?", [batch_id]
            ).fetchone()
            return None if row is None else str(row[0])

        doc = await self._lineage.read(work)
        return None if doc is None else dict(json.loads(doc))

    async def list(
        self, *, outcome: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first, without their lines; and how many match."""

        def work(conn: Any) -> tuple[list[str], int]:
            where, params = ("WHERE outcome = ?", [outcome]) if outcome else ("", [])
            total = conn.execute(
                f"SELECT count(*) FROM statement_batches {where}", params
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT document FROM statement_batches {where} "
                "ORDER BY received_at DESC, batch_id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            return [str(r[0]) for r in rows], int(total)

        docs, total = await self._lineage.read(work)
        items = []
        for doc in docs:
            item = json.loads(doc)
            for key in _SUMMARY:
                item.pop(key, None)
            items.append(item)
        return items, total

    async def correlation_of(self, invoice_reference: str) -> tuple[str, str, str | None] | None:
        """``(correlation_id, event_id, customer_id)`` of the ERP invoice posting for
        the billing invoice ``invoice_reference`` (quote-to-cash posts it under the
        order's correlation ID)."""

        def work(conn: Any) -> tuple[str, str, str | None] | None:
            row = conn.execute(
                "SELECT correlation_id, event_id, customer_id FROM events "
                "WHERE kind = 'invoice.posted' AND entity_type = 'invoice' AND entity_id = ? "
                "AND status = 'ok' ORDER BY event_time LIMIT 1",
                [invoice_reference],
            ).fetchone()
            return None if row is None else (str(row[0]), str(row[1]), row[2])

        found: tuple[str, str, str | None] | None = await self._lineage.read(work)
        return found
