"""Merge the lineage file of a collector that died into a survivor's, exactly once.

Collectors in one Kafka consumer group each own a DuckDB file (DuckDB allows one
writer per file). Offsets are committed to Kafka only after the DuckDB commit, so a
collector killed between the two leaves its last batch stored in its own file but
not committed: the partition's next owner fetches that batch again. If the next
owner simply stored it, the batch would be in two files.

So before a collector consumes newly assigned partitions it absorbs every sibling
file no process holds any more (a live collector holds its file's lock): the
sibling's events go through the normal batch pipeline of the survivor's store, in
chunks, each chunk one transaction. The dedupe on event ID makes that idempotent: a
chunk stored twice (a crash mid-absorb) or a batch fetched again after the absorb is
dropped as a duplicate. Only when every chunk is committed is the sibling file
removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb
import pyarrow as pa

from tracing import EnvelopeLayout, StoreError

from ._dead_letters import absorb_dead_letters
from ._event_schema import SQL_TYPES, table_columns

__all__ = ["ABSORB_CHUNK", "AbsorbResult", "AbsorbTarget", "absorb_file", "remove_lineage_file"]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Events per absorb transaction: bounded memory, and progress survives a crash.
ABSORB_CHUNK = 50_000

_SRC = "absorb_src"

# ``customer_name`` is not a stored column: derive it from the payload exactly as
# ``customer_name_of`` does for incoming envelopes (a non-blank string only).
_CUSTOMER_NAME = """
CASE
    WHEN json_type(payload, '$.customer.name') = 'VARCHAR'
     AND trim(payload ->> '$.customer.name') <> '' THEN payload ->> '$.customer.name'
    WHEN json_type(payload, '$.customer_name') = 'VARCHAR'
     AND trim(payload ->> '$.customer_name') <> '' THEN payload ->> '$.customer_name'
END"""


def _select_chunk(present: set[str], layout: EnvelopeLayout) -> str:
    """A chunk of the sibling's events as this store's columns; a column the sibling
    lacks (it was last opened by an older version) reads as a typed NULL."""

    def column(name: str) -> str:
        if name == "payload":
            return "payload::VARCHAR AS payload"
        if name not in present:
            return f"NULL::{SQL_TYPES[layout.column(name).type]} AS {name}"
        return name

    return (
        "SELECT "
        + ", ".join(column(c) for c in table_columns(layout))
        + f", {_CUSTOMER_NAME} AS customer_name FROM {_SRC}.events"
        + " WHERE rowid >= ? AND rowid < ?"
    )


_ADD_COUNTERS = f"""
INSERT INTO ingest_counters SELECT name, value FROM {_SRC}.ingest_counters
WHERE name NOT LIKE 'absorbed:%'
ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + excluded.value
"""


class AbsorbTarget(Protocol):
    """The store a sibling file is absorbed into: what the absorb needs of it.

    ``LineageStore.absorb`` hands one over; this module knows no store class.
    """

    @property
    def envelope(self) -> EnvelopeLayout:
        """The layout of the store's ``events`` table."""
        ...

    def on_writer(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` on the writer connection, under the writer lock, outside a
        transaction (ATTACH, DETACH and reads of the attached file)."""
        ...

    def store_chunk(self, batch: pa.Table) -> int:
        """Store a chunk of events through the batch pipeline in one transaction,
        without counting the ones already stored as duplicates; how many were new."""
        ...

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` in one write transaction (``LineageStore.write``)."""
        ...


@dataclass(frozen=True)
class AbsorbResult:
    """What absorbing one sibling file did."""

    path: Path
    #: Events the sibling held.
    events: int
    #: Of those, events this store did not have yet (the rest were duplicates).
    inserted: int


def absorb_file(
    store: AbsorbTarget,
    path: Path,
    *,
    group: tuple[str, str] | None = None,
    chunk: int = ABSORB_CHUNK,
) -> AbsorbResult | None:
    """Merge the lineage file at ``path`` into ``store``; None if it is not ours to take.

    That is, when a process holds the file, or ``group`` (consumer group, topic) is
    given and the file was not written by a collector of that group. The file is
    only read; the caller removes it (``remove_lineage_file``) once this returns.
    Raises ``StoreError`` if the file is not a lineage file or a write fails.
    """

    def attach(conn: duckdb.DuckDBPyConnection) -> bool:
        try:
            # ATTACH takes no parameters; quote the path as a SQL string literal.
            literal = "'" + str(path).replace("'", "''") + "'"
            conn.execute(f"ATTACH {literal} AS {_SRC} (READ_ONLY)")
        except duckdb.Error as exc:
            if _held(exc):
                return False  # a live collector owns it
            raise StoreError(f"cannot open lineage file {path} to absorb it: {exc}") from exc
        return True

    if not store.on_writer(attach):
        return None
    try:
        if group is not None and not store.on_writer(lambda c: _written_for(c, group)):
            log.info("not absorbing %s: not a lineage file of group %s on %s", path, *group)
            return None
        return _absorb_attached(store, path, chunk)
    finally:
        store.on_writer(lambda c: c.execute(f"DETACH {_SRC}"))


def _held(exc: duckdb.Error) -> bool:
    """Whether ATTACH failed because a live store has the file open."""
    message = str(exc).lower()
    # Another process holds the file's lock; or a store in this very process has
    # it open (DuckDB then refuses a second handle on the same file).
    return (isinstance(exc, duckdb.IOException) and "lock" in message) or (
        "file handle conflict" in message or "already attached" in message
    )


def _written_for(conn: duckdb.DuckDBPyConnection, group: tuple[str, str]) -> bool:
    if not _has_table(conn, "consumer_groups"):
        return False
    row = conn.execute(
        f"SELECT count(*) FROM {_SRC}.consumer_groups WHERE group_id = ? AND topic = ?",
        list(group),
    ).fetchone()
    return bool(row and row[0])


def _inspect(conn: duckdb.DuckDBPyConnection, path: Path) -> tuple[set[str], int, int | None]:
    """The attached file's ``events`` columns, event count and last rowid."""
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [_SRC]
        ).fetchall()
    }
    if not {"events", "dead_letters", "ingest_counters"} <= tables:
        raise StoreError(f"{path} is not a lineage file (tables: {sorted(tables)})")
    present = {
        str(r[0])
        for r in conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? "
            "AND table_name = 'events'",
            [_SRC],
        ).fetchall()
    }
    row = conn.execute(f"SELECT count(*), max(rowid) FROM {_SRC}.events").fetchone()
    total, last = (int(row[0]), row[1]) if row else (0, None)
    return present, total, None if last is None else int(last)


def _read_chunk(sql: str, lo: int, hi: int) -> Callable[[duckdb.DuckDBPyConnection], pa.Table]:
    return lambda conn: conn.execute(sql, [lo, hi]).to_arrow_table()


def _marker(conn: duckdb.DuckDBPyConnection, total: int) -> str:
    """The name this sibling's counters are recorded as added under."""
    marker = conn.execute(
        f"SELECT 'absorbed:' || md5(string_agg(event_id, ',' ORDER BY event_id)) "
        f"FROM (SELECT event_id FROM {_SRC}.events ORDER BY event_id LIMIT 1000)"
    ).fetchone()
    return f"{marker[0] if marker and marker[0] else 'absorbed:empty'}:{total}"


def _absorb_attached(store: AbsorbTarget, path: Path, chunk: int) -> AbsorbResult:
    present, total, last = store.on_writer(lambda c: _inspect(c, path))
    select_chunk = _select_chunk(present, store.envelope)
    inserted = 0
    if last is not None:
        for lo in range(0, last + 1, chunk):
            batch = store.on_writer(_read_chunk(select_chunk, lo, lo + chunk))
            if not batch.num_rows:
                continue
            # Rows already here are not deliveries: the sibling's own duplicate
            # count is carried over below instead.
            inserted += store.store_chunk(batch)
    # Counters are added once per sibling, even if a crash makes us absorb it again.
    marker_name = store.on_writer(lambda c: _marker(c, total))

    def carry(c: duckdb.DuckDBPyConnection) -> None:
        # Dead letters the events did not reopen keep the sibling's record; later
        # decisions on the sibling win where the lifecycle allows them.
        absorb_dead_letters(c, _SRC)
        if _has_table(c, "consumer_groups"):
            c.execute(
                f"INSERT INTO consumer_groups SELECT * FROM {_SRC}.consumer_groups "
                "ON CONFLICT DO NOTHING"
            )
        seen = c.execute(
            "INSERT INTO ingest_counters VALUES (?, 1) ON CONFLICT DO NOTHING RETURNING name",
            [marker_name],
        ).fetchall()
        if seen:
            c.execute(_ADD_COUNTERS)

    store.write(carry)
    log.warning(
        "absorbed lineage file %s: %d events, %d new, %d already stored",
        path,
        total,
        inserted,
        total - inserted,
    )
    return AbsorbResult(path, total, inserted)


def _has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
        [_SRC, name],
    ).fetchone()
    return bool(row and row[0])


def remove_lineage_file(path: Path) -> None:
    """Delete a lineage file and its write-ahead log (after it was absorbed)."""
    for victim in (path, path.with_name(path.name + ".wal")):
        victim.unlink(missing_ok=True)
