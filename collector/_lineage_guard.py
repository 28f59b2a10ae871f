"""Keeping the lineage writer inside DuckDB's ``memory_limit``, and ending a failed
transaction cleanly.

DuckDB keeps the rows appended since the last checkpoint in memory
(``IN_MEMORY_TABLE``) until its WAL reaches ``checkpoint_threshold``, and the
ART indexes are never evicted. With a ``memory_limit`` below index + threshold +
working memory a batch then fails with "Out of Memory" (docs/performance.md).
``MemoryGuard`` checks what DuckDB holds before each batch (under a millisecond)
and checkpoints early when it passes a share of the limit, so the limit is a
ceiling ingest works under rather than a way to stop it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable

import duckdb

__all__ = ["MemoryGuard", "end_transaction", "parse_duckdb_size", "unregister"]

log = logging.getLogger(__name__)

#: Checkpoint before a batch when DuckDB holds more than this share of its limit.
#: Each checkpoint costs about a second at a few million events (it writes the
#: indexes again), so not much lower; the rest is the batch's working room.
RELIEVE_AT = 0.7
#: Share of the limit one batch's rows may take, and what a row is assumed to take
#: there (a 1.6 KB envelope as Arrow, and as DuckDB's copy of it).
BATCH_SHARE = 0.05
ROW_BYTES = 2048

_UNITS = {
    "bytes": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_HUMAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


def parse_duckdb_size(text: str) -> int | None:
    """Bytes in a DuckDB size as it prints them (``"244.1 MiB"``, ``"256MB"``).

    >>> parse_duckdb_size("244.1 MiB")
    255957401
    >>> parse_duckdb_size("256MB")
    256000000
    """
    match = _HUMAN.match(text)
    if match is None:
        return None
    unit = _UNITS.get(match.group(2).lower())
    return None if unit is None else int(float(match.group(1)) * unit)


class MemoryGuard:
    """Checkpoints the lineage early when DuckDB nears its memory limit.

    ``limit`` is DuckDB's effective ``memory_limit`` in bytes (read back from the
    database, so the 80 %-of-RAM default is covered too).
    """

    def __init__(self, limit: int | None, *, relieve_at: float = RELIEVE_AT) -> None:
        if not 0 < relieve_at < 1:
            raise ValueError("relieve_at must be between 0 and 1")
        self.limit = limit
        self.relieve_at = relieve_at
        self.checkpoints = 0

    @classmethod
    def of(cls, conn: duckdb.DuckDBPyConnection) -> MemoryGuard:
        row = conn.execute("SELECT current_setting('memory_limit')").fetchone()
        return cls(parse_duckdb_size(str(row[0])) if row else None)

    @staticmethod
    def used(conn: duckdb.DuckDBPyConnection) -> int:
        """Bytes DuckDB's buffer manager holds now (every tag)."""
        row = conn.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        return int(row[0] or 0) if row else 0

    def max_rows(self, row_bytes: int = ROW_BYTES) -> int | None:
        """Rows one batch should hold at most under this limit (None: no limit).

        >>> MemoryGuard(256_000_000).max_rows()
        6250
        """
        if self.limit is None:
            return None
        return max(100, int(self.limit * BATCH_SHARE / row_bytes))

    def before_batch(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Checkpoint now when DuckDB holds more than ``relieve_at`` of its limit."""
        if self.limit is None:
            return
        try:
            used = self.used(conn)
        except duckdb.Error:
            return  # the batch itself will meet (and report) whatever is wrong
        if used > self.limit * self.relieve_at:
            self.relieve(conn)

    def relieve(self, conn: duckdb.DuckDBPyConnection) -> bool:
        """Write the rows held in memory to the file (a checkpoint); False if it could not."""
        try:
            conn.execute("CHECKPOINT")
        # A reader's open transaction or the memory itself may refuse it; the next
        # batch (or retry) tries again, and a failed batch is reported on its own.
        except duckdb.Error as exc:
            log.info("lineage checkpoint for memory not done: %s", exc)
            return False
        self.checkpoints += 1
        return True


def end_transaction(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if DuckDB has not ended it already.

    A COMMIT that fails (out of memory while writing it) ends the transaction
    itself, and a ROLLBACK after it would raise "no transaction is active": that
    one is expected and ignored. Other errors (an invalidated database) propagate.
    """
    # Already ended by DuckDB: nothing is left to undo.
    with contextlib.suppress(duckdb.TransactionException):
        conn.execute("ROLLBACK")


def unregister(conn: duckdb.DuckDBPyConnection, names: Iterable[str]) -> None:
    """Drop the Arrow views a batch registered, on a connection that may be unusable."""
    for name in names:
        try:
            conn.unregister(name)
        # An invalidated or closed connection takes its views with it.
        except duckdb.Error:
            return
