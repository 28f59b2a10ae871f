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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from tracing import EnvelopeLayout, StoreError

from ._event_schema import SQL_TYPES, table_columns
from ._schema import DEAD_LETTER_COLUMNS

if TYPE_CHECKING:
    from ._lineage import LineageStore

__all__ = ["ABSORB_CHUNK", "AbsorbResult", "absorb_file", "remove_lineage_file"]

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


# An operator's later decision on a dead letter (ignored, replay requested ...)
# is carried over; the lifecycle the events imply was rebuilt by the pipeline.
_CARRY_DEAD_LETTER_STATE = f"""
UPDATE dead_letters SET
    state = s.state, state_changed_at = s.state_changed_at,
    state_changed_by = s.state_changed_by, state_note = s.state_note,
    resolved_by_event = coalesce(dead_letters.resolved_by_event, s.resolved_by_event)
FROM {_SRC}.dead_letters AS s
WHERE dead_letters.event_id = s.event_id
  AND s.state_changed_at > dead_letters.state_changed_at
  AND s.state_changed_by IS DISTINCT FROM 'collector'
"""

_ADD_COUNTERS = f"""
INSERT INTO ingest_counters SELECT name, value FROM {_SRC}.ingest_counters
WHERE name NOT LIKE 'absorbed:%'
ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + excluded.value
"""


@dataclass(frozen=True)
class AbsorbResult:
    """What absorbing one sibling file did."""

    path: Path
    #: Events the sibling held.
    events: int
    #: Of those, events this store did not have yet (the rest were duplicates).
    inserted: int


def absorb_file(
    store: LineageStore,
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
    conn = store._writer()
    with store._write_lock:
        try:
            # ATTACH takes no parameters; quote the path as a SQL string literal.
            literal = "'" + str(path).replace("'", "''") + "'"
            conn.execute(f"ATTACH {literal} AS {_SRC} (READ_ONLY)")
        except duckdb.Error as exc:
            if _held(exc):
                return None  # a live collector owns it
            raise StoreError(f"cannot open lineage file {path} to absorb it: {exc}") from exc
    try:
        if group is not None and not _written_for(conn, group):
            log.info("not absorbing %s: not a lineage file of group %s on %s", path, *group)
            return None
        return _absorb_attached(store, conn, path, chunk)
    finally:
        with store._write_lock:
            conn.execute(f"DETACH {_SRC}")


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


def _absorb_attached(
    store: LineageStore, conn: duckdb.DuckDBPyConnection, path: Path, chunk: int
) -> AbsorbResult:
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
    select_chunk = _select_chunk(present, store.envelope)
    row = conn.execute(f"SELECT count(*), max(rowid) FROM {_SRC}.events").fetchone()
    total, last = (int(row[0]), row[1]) if row else (0, None)
    inserted = 0
    if last is not None:
        for lo in range(0, int(last) + 1, chunk):
            with store._write_lock:
                batch = conn.execute(select_chunk, [lo, lo + chunk]).to_arrow_table()
            if not batch.num_rows:
                continue
            # Rows already here are not deliveries: the sibling's own duplicate
            # count is carried over below instead.
            outcome = store._commit(batch, batch.num_rows, count_duplicates=False)
            inserted += outcome.result.inserted
    dl = ", ".join(DEAD_LETTER_COLUMNS)
    # Counters are added once per sibling, even if a crash makes us absorb it again.
    marker = conn.execute(
        f"SELECT 'absorbed:' || md5(string_agg(event_id, ',' ORDER BY event_id)) "
        f"FROM (SELECT event_id FROM {_SRC}.events ORDER BY event_id LIMIT 1000)"
    ).fetchone()
    marker_name = f"{marker[0] if marker and marker[0] else 'absorbed:empty'}:{total}"

    def carry(c: duckdb.DuckDBPyConnection) -> None:
        # Dead letters the events did not reopen (their event was a duplicate here)
        # keep the sibling's record; later operator decisions win.
        c.execute(
            f"INSERT INTO dead_letters ({dl}) SELECT {dl} FROM {_SRC}.dead_letters "
            "ON CONFLICT DO NOTHING"
        )
        c.execute(_CARRY_DEAD_LETTER_STATE)
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
