"""The DuckDB lineage store: the one writer of the lineage file, and its queries.

``LineageStore`` is synchronous and thread-confined: its writer connection is used
by one thread at a time (a lock enforces it), and every read gets a fresh cursor of
its own. ``AsyncLineage`` puts the same surface on an event loop: writes run on one
dedicated writer thread, reads on a small pool, so DuckDB never blocks the loop.

A batch is one DuckDB transaction:

1. insert the events not stored yet (the batch's event-ID hashes are probed in the
   in-memory set of stored ones, ``collector._event_keys``, and only the rows it
   may hold are compared by event ID), the first of each ID in the batch;
2. open a dead letter for every new ``dead_lettered`` event;
3. resolve unresolved dead letters of the same correlation ID and step when an
   ``ok``/``replayed`` event later in time is stored (in either order of arrival);
4. upsert the ``transactions`` summaries with one ``INSERT ... ON CONFLICT`` over an
   aggregate of the new events, then refresh their state.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tracing import ENVELOPE, EnvelopeLayout, Event, Status, StoreError

from ._absorb import AbsorbResult, absorb_file
from ._columns import EnvelopeColumns, batch_table
from ._dead_letters import (
    DeadLetterFilter,
    DeadLetterListing,
    dead_letters_page,
    open_dead_letters,
    resolve_by_event,
)
from ._event_keys import EventKeys, Keys
from ._event_schema import insert_events
from ._invalid import (
    CONVERSION_ERRORS,
    convert_column_rows,
    convert_rows,
    is_row_error,
    row_dead_letter,
)
from ._lineage_errors import StoreWriteError, WriteErrorKind, classify_write_error
from ._lineage_guard import MemoryGuard, end_transaction, unregister
from ._lineage_queries import (
    TRANSACTION_STATES,
    lineage_stats,
    transaction_detail,
    transactions_page,
)
from ._lineage_sql import (
    ALL_DEAD_LETTER_KEYS,
    BATCH_KEYS,
    REFRESH_STATES,
    UNRESOLVED_SQL,
    UPSERT_TRANSACTIONS,
    count_open,
    drop_event_id_key,
    stored_ids,
)
from ._schema import SCHEMA_VERSION, ddl, upgrades
from ._waiting import FlowSteps

__all__ = ["TRANSACTION_STATES", "AsyncLineage", "BatchOutcome", "LineageStore", "WriteResult"]

T = TypeVar("T")

_RESOLVING = (Status.OK.value, Status.REPLAYED.value)
_FAILING = (Status.FAILED.value, Status.RETRYING.value, Status.DEAD_LETTERED.value)
#: WAL size at which DuckDB checkpoints the lineage file (see ``open``).
CHECKPOINT_THRESHOLD = "128MB"
_SIZE = re.compile(r"^\d{1,6}(\.\d{1,3})?\s?[KMGT]i?B$")


@dataclass(frozen=True)
class WriteResult:
    """What one ``write_batch`` did."""

    inserted: int
    duplicates: int
    dead_letters_opened: int
    dead_letters_resolved: int


@dataclass(frozen=True)
class BatchOutcome:
    """A ``WriteResult`` plus what the ingest pipeline needs for its metrics."""

    result: WriteResult
    #: IDs of the events this batch stored (duplicates excluded).
    inserted_ids: frozenset[str]
    #: Unresolved dead letters after the batch committed.
    dead_letters_open: int
    #: IDs of the events of the batch the store could not take: each became an
    #: ``event.invalid`` dead letter (``collector._invalid``) instead.
    refused_ids: tuple[str, ...] = ()


def _merged(
    outcomes: Sequence[BatchOutcome], refused: tuple[str, ...], open_count: Callable[[], int]
) -> BatchOutcome:
    """One outcome for a batch committed in parts."""
    total = WriteResult(
        sum(o.result.inserted for o in outcomes),
        sum(o.result.duplicates for o in outcomes),
        sum(o.result.dead_letters_opened for o in outcomes),
        sum(o.result.dead_letters_resolved for o in outcomes),
    )
    ids = frozenset().union(*(o.inserted_ids for o in outcomes))
    open_now = outcomes[-1].dead_letters_open if outcomes else open_count()
    return BatchOutcome(total, ids, open_now, refused)


class LineageStore:
    """The lineage database; the collector process is its only writer.

    >>> store = LineageStore()          # ":memory:" by default
    >>> store.open()
    >>> store.write_batch([]).inserted
    0
    >>> store.close()
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        completion_kinds: frozenset[str] = frozenset({"invoice.posted"}),
        memory_limit: str | None = None,
        threads: int | None = None,
        checkpoint_threshold: str = CHECKPOINT_THRESHOLD,
        flows: Sequence[FlowSteps] = (),
        envelope: EnvelopeLayout = ENVELOPE,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        if not _SIZE.match(checkpoint_threshold):
            raise ValueError(f"checkpoint_threshold is not a size: {checkpoint_threshold!r}")
        self.path = str(path)
        #: The envelope's layout: the ``events`` columns this store writes and reads.
        self.envelope = envelope
        self.completion_kinds = completion_kinds
        # The flows' step tables: where a transaction waits, and whether it is stalled.
        self.flows = tuple(flows)
        # DuckDB's own settings; None keeps its defaults (80 % of RAM, one
        # thread per core). The buffer pool otherwise grows with what is stored.
        self.memory_limit = memory_limit
        self.threads = threads
        # Rows appended since the last checkpoint stay in memory (DuckDB's
        # IN_MEMORY_TABLE) until the WAL reaches this size: a memory lever.
        self.checkpoint_threshold = checkpoint_threshold
        self._conn: duckdb.DuckDBPyConnection | None = None
        # Readers derive cursors from a connection of their own so cursor creation
        # never races the writer's use of the main connection.
        self._read_root: duckdb.DuckDBPyConnection | None = None
        self._write_lock = threading.Lock()
        self._cursor_lock = threading.Lock()
        # Hashes of every stored event ID (the dedupe), and those of the batch in
        # the open transaction (added once it commits).
        self._keys = EventKeys()
        self._pending_keys: list[Keys] = []
        # Checkpoints early when DuckDB nears its memory limit (set at open).
        self.memory = MemoryGuard(None)
        #: Times the database was opened again after DuckDB invalidated it.
        self.reopened = 0

    # -- lifecycle ---------------------------------------------------------------

    def set_flows(self, flows: Sequence[FlowSteps]) -> None:
        """The installed flows' step tables (the host sets them once plug-ins are in)."""
        self.flows = tuple(flows)

    def open(self) -> None:
        """Connect and apply the schema; safe to call twice."""
        if self._conn is not None:
            return
        try:
            config: dict[str, str | bool | int | float | list[str]] = {}
            if self.memory_limit is not None:
                config["memory_limit"] = self.memory_limit
            if self.threads is not None:
                config["threads"] = self.threads
            # Passed as connection config, so DuckDB itself checks the values.
            conn = duckdb.connect(self.path, config=config)
            conn.execute("SET TimeZone = 'UTC'")
            # DuckDB checkpoints when its WAL passes 16 MB by default, and every
            # checkpoint writes the whole event_id and correlation_id indexes
            # again: at ~1.6 KB per event that is every 10,000 events, and commits
            # got dearer as the table grew. Checkpointing every 128 MB made batch
            # ingest ~1.5x faster (docs/performance.md); recovery replays at most
            # that much WAL after a crash.
            # SET takes no parameters; the value was checked against _SIZE.
            conn.execute(f"SET checkpoint_threshold = '{self.checkpoint_threshold}'")
            conn.execute(ddl(self.envelope))
            for statement in upgrades(self.envelope):
                conn.execute(statement)
            drop_event_id_key(conn, self.envelope)
            row = conn.execute("SELECT max(version) FROM schema_info").fetchone()
            if row is None or row[0] is None:
                conn.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
            elif row[0] < SCHEMA_VERSION:
                conn.execute("UPDATE schema_info SET version = ?", [SCHEMA_VERSION])
            stored = conn.execute("SELECT hash(event_id) AS k FROM events").fetchnumpy()["k"]
            memory = MemoryGuard.of(conn)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open the lineage store at {self.path}: {exc}") from exc
        self.memory = memory
        self._keys = EventKeys(stored)
        self._pending_keys = []
        self._conn = conn
        self._read_root = conn.cursor()

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._write_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        with self._cursor_lock:
            conn, self._conn = self._conn, None
            root, self._read_root = self._read_root, None
        if root is not None:
            root.close()
        if conn is not None:
            conn.close()

    def _reopen_locked(self) -> None:
        """Open the file again after DuckDB invalidated the database (writer lock held).

        An in-memory database would come back empty, so it is left as it is: its
        writes keep failing as FATAL, which the writer reports.
        """
        if self.path == ":memory:":
            return
        try:
            self._close_locked()
        # Closing an invalidated database may raise; it is being replaced anyway.
        except duckdb.Error:
            self._conn = self._read_root = None
        self.open()
        self.reopened += 1

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _writer(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            raise StoreError("the lineage store is not open")
        return self._conn

    # -- generic access ----------------------------------------------------------

    def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` on a fresh cursor, in one read transaction: every query of ``fn``
        sees the same committed snapshot (a summary and its events never disagree
        because a batch landed between the two queries)."""
        with self._cursor_lock:
            if self._read_root is None:
                raise StoreError("the lineage store is not open")
            cursor = self._read_root.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION")
            try:
                return fn(cursor)
            finally:
                cursor.execute("ROLLBACK")
        except duckdb.Error as exc:
            raise StoreError(f"lineage read failed: {exc}") from exc
        finally:
            cursor.close()

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` in one transaction on the writer connection.

        Transaction states are refreshed from ``dead_letters`` before the commit, so
        a replay or an operator changing a dead letter keeps the summaries right.
        """
        with self._write_lock:
            conn = self._writer()
            try:
                conn.execute("BEGIN TRANSACTION")
                result = fn(conn)
                conn.execute(REFRESH_STATES.format(keys=ALL_DEAD_LETTER_KEYS))
                conn.execute("COMMIT")
            except duckdb.Error as exc:
                raise self._failed(conn, exc, "lineage write failed") from exc
            except BaseException:
                end_transaction(conn)
                raise
            return result

    # -- ingest ------------------------------------------------------------------

    def write_batch(self, events: Sequence[Event]) -> WriteResult:
        """Store a batch in one transaction; see the module docstring for the steps."""
        return self.write_batch_detailed(events).result

    def write_batch_detailed(self, events: Sequence[Event]) -> BatchOutcome:
        """``write_batch`` that also says which events were new (for metrics)."""
        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(event.event_id, event)
        if not unique:
            return BatchOutcome(WriteResult(0, len(events), 0, 0), frozenset(), self._open_count())
        rows = list(unique.values())
        try:
            batch = batch_table(rows, datetime.now(UTC), self.envelope)
        except CONVERSION_ERRORS:
            # One row the store cannot take must not hold back the rest of the batch.
            return self._write_apart(rows, len(events) - len(rows))
        try:
            return self._commit(batch, len(events))
        except StoreError as exc:
            if not is_row_error(exc):
                raise
            return self._write_apart(rows, len(events) - len(rows))

    def _write_apart(self, rows: Sequence[Event], repeats: int) -> BatchOutcome:
        """A batch that failed as a whole, row by row: every row the store takes is
        stored, each one it cannot take becomes a dead letter (``collector._invalid``)."""
        tables, dead = convert_rows(rows, datetime.now(UTC), self.envelope)
        return self._commit_apart(tables, dead, repeats)

    def _commit_apart(
        self, tables: Sequence[tuple[pa.Table, str]], dead: list[Event], repeats: int
    ) -> BatchOutcome:
        outcomes: list[BatchOutcome] = []
        if tables:
            try:
                outcomes.append(
                    self._commit(pa.concat_tables([t for t, _ in tables]), len(tables) + repeats)
                )
                repeats = 0
            except StoreError as exc:
                if not is_row_error(exc):
                    raise
                for table, _ in tables:
                    try:
                        outcomes.append(self._commit(table, 1 + repeats))
                        repeats = 0
                    except StoreError as row_exc:
                        if not is_row_error(row_exc):
                            raise
                        dead.append(
                            row_dead_letter(
                                table.to_pylist()[0],
                                f"the lineage cannot insert this row: {row_exc.message}",
                                error_type=type(row_exc.__cause__).__name__,
                            )
                        )
        refused = tuple(str(e.payload["refused_event_id"]) for e in dead)
        if dead:
            # If the store cannot take even these, it is down: the error goes up and
            # the batch is retried (the rows stored above are then deduped).
            outcomes.append(self._commit(batch_table(dead, datetime.now(UTC)), len(dead) + repeats))
        return _merged(outcomes, refused, self._open_count)

    def write_columns(self, columns: EnvelopeColumns) -> BatchOutcome:
        """``write_batch_detailed`` for envelopes already decoded into columns.

        The fast ingest path (Kafka, raw bodies): no ``Event`` objects, the
        payloads stay the JSON text they arrived as. Same transaction, same
        dedupe on event ID (within the batch and against the table).
        """
        if not len(columns):
            return BatchOutcome(WriteResult(0, 0, 0, 0), frozenset(), self._open_count())
        try:
            batch, _repeats = columns.table(datetime.now(UTC))
        except CONVERSION_ERRORS:
            tables, dead, repeats = convert_column_rows(columns, datetime.now(UTC))
            return self._commit_apart(tables, dead, repeats)
        try:
            return self._commit(batch, len(columns))
        except StoreError as exc:
            if not is_row_error(exc):
                raise
            tables, dead, repeats = convert_column_rows(columns, datetime.now(UTC))
            return self._commit_apart(tables, dead, repeats)

    def absorb(
        self, path: str | Path, *, group: tuple[str, str] | None = None
    ) -> AbsorbResult | None:
        """Merge another lineage file into this one, exactly once (``collector._absorb``).

        Returns None, touching nothing, when another process holds that file, or
        ``group`` (consumer group, topic) is given and the file is not that group's.
        """
        return absorb_file(_AbsorbPort(self), Path(path), group=group)

    def claim_group(self, group: str, topic: str) -> None:
        """Mark this file as written by a collector of ``group`` consuming ``topic``."""
        self.write(
            lambda c: c.execute(
                "INSERT INTO consumer_groups VALUES (?, ?) ON CONFLICT DO NOTHING", [group, topic]
            )
        )

    def _commit(
        self, batch: pa.Table, delivered: int, *, count_duplicates: bool = True
    ) -> BatchOutcome:
        with self._write_lock:
            conn = self._writer()
            self.memory.before_batch(conn)
            try:
                conn.execute("BEGIN TRANSACTION")
                outcome = self._write_locked(
                    conn, batch, delivered, count_duplicates=count_duplicates
                )
                conn.execute("COMMIT")
            except duckdb.Error as exc:
                self._pending_keys = []
                raise self._failed(conn, exc, "lineage batch write failed") from exc
            except BaseException:
                self._pending_keys = []
                end_transaction(conn)
                raise
            finally:
                unregister(conn, ("_batch", "_insert", "_new"))
            self._committed()
        return outcome

    def _committed(self) -> None:
        """After a COMMIT: the keys of the events it stored join the dedupe set."""
        pending, self._pending_keys = self._pending_keys, []
        for keys in pending:
            self._keys.add(keys)

    def _failed(
        self, conn: duckdb.DuckDBPyConnection, exc: duckdb.Error, what: str
    ) -> StoreWriteError:
        """End the failed transaction, recover what can be recovered, classify ``exc``.

        Writer lock held. Out of memory: checkpoint, so the retry finds room. An
        invalidated database (or one that fails even its rollback): reopen it.
        """
        kind = classify_write_error(exc)
        try:
            end_transaction(conn)
        except duckdb.Error:
            kind = WriteErrorKind.FATAL
        if kind is WriteErrorKind.RESOURCE:
            self.memory.relieve(conn)
        elif kind is WriteErrorKind.FATAL:
            try:
                self._reopen_locked()
            except StoreError as reopen:
                return StoreWriteError(f"{what}: {exc}; reopening failed: {reopen}", kind=kind)
        return StoreWriteError(f"{what}: {exc}", kind=kind)

    def _write_locked(
        self,
        conn: duckdb.DuckDBPyConnection,
        batch: pa.Table,
        delivered: int,
        *,
        count_duplicates: bool = True,
    ) -> BatchOutcome:
        conn.register("_batch", batch)
        keys = conn.execute("SELECT hash(event_id) AS k FROM _batch").fetchnumpy()["k"]
        keep = self._unstored(conn, batch, keys)
        new = batch if keep is None else batch.filter(pa.array(keep))
        conn.register("_insert", new)
        conn.execute(insert_events(self.envelope))
        inserted_ids = frozenset(new.column("event_id").to_pylist())
        self._pending_keys.append(keys if keep is None else keys[keep])
        new = new.sort_by([("event_time", "ascending"), ("event_id", "ascending")])
        new = new.append_column("seq", pa.array(range(new.num_rows), pa.int64()))
        conn.register("_new", new)
        duplicates = delivered - len(inserted_ids)
        if duplicates and count_duplicates:
            conn.execute(
                "INSERT INTO ingest_counters VALUES ('duplicates_dropped', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + excluded.value",
                [duplicates],
            )
        opened = resolved = 0
        open_now = count_open(conn)
        if new.num_rows:
            opened = self._open_dead_letters(conn, new)
            # Most batches meet no unresolved dead letter at all: then neither the
            # search for resolutions nor the state refresh has anything to do.
            dead_letters_touched = bool(open_now or opened)
            if dead_letters_touched:
                resolved = self._resolve_dead_letters(conn, new)
                open_now = count_open(conn)
            conn.execute(
                UPSERT_TRANSACTIONS,
                {
                    "kinds": sorted(self.completion_kinds),
                    "holds": sorted({k for f in self.flows for k in f.hold_kinds}),
                    "releases": sorted({k for f in self.flows for k in f.release_kinds}),
                },
            )
            if dead_letters_touched:
                conn.execute(REFRESH_STATES.format(keys=BATCH_KEYS))
        return BatchOutcome(
            WriteResult(len(inserted_ids), duplicates, opened, resolved), inserted_ids, open_now
        )

    def _unstored(
        self, conn: duckdb.DuckDBPyConnection, batch: pa.Table, keys: Keys
    ) -> npt.NDArray[np.bool_] | None:
        """Which rows of ``batch`` to store (None: all): not stored yet, first of their ID."""
        maybe = self._keys.probe(keys)
        if not maybe.any() and len(np.unique(keys)) == len(keys):
            return None
        ids: list[str] = batch.column("event_id").to_pylist()
        stored = stored_ids(conn, [ids[i] for i in np.flatnonzero(maybe)])
        keep = np.ones(len(ids), dtype=bool)
        seen: set[str] = set()
        for i, event_id in enumerate(ids):
            if event_id in stored or event_id in seen:
                keep[i] = False
            seen.add(event_id)
        return keep

    def _open_dead_letters(self, conn: duckdb.DuckDBPyConnection, new: pa.Table) -> int:
        dead = new.filter(pc.equal(new["status"], Status.DEAD_LETTERED.value)).to_pylist()
        if not dead:
            return 0
        failures: list[dict[str, Any]] = []
        for event in dead:
            if (
                event["replay_of"]
                and conn.execute(
                    "SELECT 1 FROM dead_letters WHERE event_id = ? AND correlation_id = ? "
                    f"AND step = ? AND state IN ({UNRESOLVED_SQL})",
                    [event["replay_of"], event["correlation_id"], event["step"]],
                ).fetchone()
            ):
                # A failed redo of the very step of an unresolved dead letter: the
                # replay reopens that one, so the failure is not counted twice. A
                # failure at any other step after a replay (the redo went on and
                # failed later) is a new dead letter of its own.
                continue
            # The first failure of this step in this transaction (an indexed lookup,
            # only for the rare dead-lettered event).
            first = conn.execute(
                "SELECT min(event_time) FROM events WHERE correlation_id = ? AND step = ? "
                f"AND status IN ({', '.join('?' * len(_FAILING))}) AND event_time <= ?",
                [event["correlation_id"], event["step"], *_FAILING, event["event_time"]],
            ).fetchone()
            first_failed = first[0] if first and first[0] is not None else event["event_time"]
            failures.append(
                {
                    "event_id": event["event_id"],
                    "correlation_id": event["correlation_id"],
                    "step": event["step"],
                    "kind": event["kind"],
                    "target": event["target"],
                    "reason": event["error_reason"] or "unknown",
                    "error_message": event["error_message"],
                    "attempts": event["attempt"],
                    "amount": event["amount"],
                    "currency": event["currency"],
                    "customer_id": event["customer_id"],
                    "first_failed_at": first_failed,
                    "last_failed_at": event["event_time"],
                }
            )
        return open_dead_letters(conn, failures, at=datetime.now(UTC))

    def _resolve_dead_letters(self, conn: duckdb.DuckDBPyConnection, new: pa.Table) -> int:
        # Candidates: unresolved dead letters of the transactions this batch touched.
        candidates = conn.execute(
            "SELECT d.event_id, d.correlation_id, d.step, d.last_failed_at FROM dead_letters d "
            f"WHERE d.state IN ({UNRESOLVED_SQL}) "
            "AND d.correlation_id IN (SELECT DISTINCT correlation_id FROM _new)"
        ).fetchall()
        if not candidates:
            return 0
        resolved = 0
        now = datetime.now(UTC)
        for dl_id, correlation_id, step, failed_at in candidates:
            # The earliest ok/replayed event of the step after the failure, whether
            # it arrived in this batch or (out of order) before the dead letter.
            row = conn.execute(
                "SELECT event_id FROM events WHERE correlation_id = ? AND step = ? "
                "AND status IN (?, ?) AND (event_time > ? OR (event_time = ? AND event_id > ?)) "
                "ORDER BY event_time, event_id LIMIT 1",
                [correlation_id, step, *_RESOLVING, failed_at, failed_at, dl_id],
            ).fetchone()
            if row is None:
                continue
            resolved += resolve_by_event(
                conn,
                dl_id,
                outcome_event_id=row[0],
                at=now,
                note="resolved by a later successful event of the same step",
            )
        return resolved

    def _open_count(self) -> int:
        return self.read(count_open)

    # -- queries -----------------------------------------------------------------

    def list_transactions(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        state: str | None = None,
        q: str | None = None,
        now: datetime | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Summaries, most recently updated first, and the total matching.

        Each not-completed one says what it waits for (``waiting_step``,
        ``waiting_since``, ``due_at``); one overdue with no open dead letter reads
        ``stalled`` (and is filtered as such) as of ``now``.
        """
        when = now or datetime.now(UTC)
        return self.read(
            lambda cur: transactions_page(
                cur, self.flows, limit=limit, offset=offset, state=state, q=q, now=when
            )
        )

    def get_transaction(
        self, correlation_id: str, *, now: datetime | None = None
    ) -> dict[str, Any] | None:
        """One summary with its events in event_time order, or ``None``."""
        when = now or datetime.now(UTC)
        return self.read(
            lambda cur: transaction_detail(cur, self.flows, correlation_id, when, self.envelope)
        )

    def list_dead_letters(
        self,
        *,
        state: str | None = "open",
        reason: str | None = None,
        step: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Dead letters, most recent failure first, and the total matching
        (``dead_letter_page`` takes every filter and a cursor)."""
        selected = DeadLetterFilter(
            states=(state,) if state else (), reason=reason or None, step=step or None
        )
        page = self.dead_letter_page(selected, limit=limit, offset=offset)
        return page.items, page.total

    def dead_letter_page(
        self,
        selected: DeadLetterFilter,
        *,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
    ) -> DeadLetterListing:
        """The dead letters ``selected`` picks, most recent failure first
        (``collector._dead_letters.dead_letters_page``)."""
        return self.read(
            lambda cur: dead_letters_page(cur, selected, limit=limit, offset=offset, cursor=cursor)
        )

    def stats(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Counts for the overview; ``bus_backlog`` is the runtime's to fill in (0 here).

        Stalled transactions (as of ``now``) count as ``stalled``, not in their stored state.
        """
        when = now or datetime.now(UTC)
        return self.read(lambda cur: lineage_stats(cur, self.flows, when))


class _AbsorbPort:
    """What ``collector._absorb`` needs of a store (``AbsorbTarget``), so it reaches
    none of the store's insides."""

    def __init__(self, store: LineageStore) -> None:
        self._store = store

    @property
    def envelope(self) -> EnvelopeLayout:
        return self._store.envelope

    def on_writer(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._store._write_lock:
            return fn(self._store._writer())

    def store_chunk(self, batch: pa.Table) -> int:
        outcome = self._store._commit(batch, batch.num_rows, count_duplicates=False)
        return outcome.result.inserted

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return self._store.write(fn)


class AsyncLineage:
    """``LineageStore`` for the event loop: one writer thread, a few reader threads.

    Every write (``write_batch``, ``write``) runs in submission order on the one
    writer thread; reads run concurrently on their own cursors.
    """

    def __init__(self, store: LineageStore, *, readers: int = 4) -> None:
        self.store = store
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineage-writer")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="lineage-read")
        self._closed = False

    async def _on_writer(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StoreError("the lineage store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    async def _on_reader(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StoreError("the lineage store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn)

    async def open(self) -> None:
        """Open the store on the writer thread (a no-op if already open)."""
        await self._on_writer(self.store.open)

    async def write_batch(self, events: Sequence[Event]) -> WriteResult:
        """See ``LineageStore.write_batch``."""
        batch = list(events)
        return await self._on_writer(lambda: self.store.write_batch(batch))

    async def write_batch_detailed(self, events: Sequence[Event]) -> BatchOutcome:
        """See ``LineageStore.write_batch_detailed``."""
        batch = list(events)
        return await self._on_writer(lambda: self.store.write_batch_detailed(batch))

    async def write_columns(self, columns: EnvelopeColumns) -> BatchOutcome:
        """See ``LineageStore.write_columns``."""
        return await self._on_writer(lambda: self.store.write_columns(columns))

    async def absorb(
        self, path: str | Path, *, group: tuple[str, str] | None = None
    ) -> AbsorbResult | None:
        """See ``LineageStore.absorb``."""
        return await self._on_writer(lambda: self.store.absorb(path, group=group))

    async def claim_group(self, group: str, topic: str) -> None:
        """See ``LineageStore.claim_group``."""
        await self._on_writer(lambda: self.store.claim_group(group, topic))

    async def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """See ``LineageStore.write``."""
        return await self._on_writer(lambda: self.store.write(fn))

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """See ``LineageStore.read``."""
        return await self._on_reader(lambda: self.store.read(fn))

    async def list_transactions(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        state: str | None = None,
        q: str | None = None,
        now: datetime | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """See ``LineageStore.list_transactions``."""
        return await self._on_reader(
            lambda: self.store.list_transactions(
                limit=limit, offset=offset, state=state, q=q, now=now
            )
        )

    async def get_transaction(
        self, correlation_id: str, *, now: datetime | None = None
    ) -> dict[str, Any] | None:
        """See ``LineageStore.get_transaction``."""
        return await self._on_reader(lambda: self.store.get_transaction(correlation_id, now=now))

    async def list_dead_letters(
        self,
        *,
        state: str | None = "open",
        reason: str | None = None,
        step: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """See ``LineageStore.list_dead_letters``."""
        return await self._on_reader(
            lambda: self.store.list_dead_letters(
                state=state, reason=reason, step=step, limit=limit, offset=offset
            )
        )

    async def dead_letter_page(
        self,
        selected: DeadLetterFilter,
        *,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
    ) -> DeadLetterListing:
        """See ``LineageStore.dead_letter_page``."""
        return await self._on_reader(
            lambda: self.store.dead_letter_page(selected, limit=limit, offset=offset, cursor=cursor)
        )

    async def stats(self, *, now: datetime | None = None) -> dict[str, Any]:
        """See ``LineageStore.stats``."""
        return await self._on_reader(lambda: self.store.stats(now=now))

    async def close(self) -> None:
        """Finish queued work, close the store and the threads; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        # Readers first: the store's close waits for the writer lock, not for them.
        await loop.run_in_executor(None, self._readers.shutdown, True)
        await loop.run_in_executor(self._writer, self.store.close)
        await loop.run_in_executor(None, self._writer.shutdown, True)
