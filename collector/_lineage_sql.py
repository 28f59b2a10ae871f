"""The lineage store's SQL: the batch upsert of transaction summaries, the state
refresh, and the schema upkeep and lookups the writer needs (``collector._lineage``).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from tracing import ENVELOPE, EnvelopeLayout

from ._event_schema import events_indexes, events_table
from ._lineage_rows import SUMMARY_COLUMNS
from ._schema import UNRESOLVED_DEAD_LETTER_STATES

__all__ = [
    "ALL_DEAD_LETTER_KEYS",
    "BATCH_KEYS",
    "POINT_LOOKUPS",
    "REFRESH_STATES",
    "SUMMARY_SELECT",
    "UNRESOLVED_SQL",
    "UPSERT_TRANSACTIONS",
    "count_open",
    "drop_event_id_key",
    "stored_ids",
]

UNRESOLVED_SQL = ", ".join(f"'{s}'" for s in UNRESOLVED_DEAD_LETTER_STATES)

#: Up to this many possibly-stored IDs are looked up through the ``events_id``
#: index one statement each; more (a whole batch delivered again) in one join.
POINT_LOOKUPS = 32

# Rank of an event in the batch by (event_time, event_id): an integer key keeps
# arg_min/arg_max cheap while ordering exactly like the pair.
KEY = "seq"
NEWER = (
    "(transactions.last_event_time IS NULL"
    " OR excluded.last_event_time > transactions.last_event_time"
    " OR (excluded.last_event_time = transactions.last_event_time"
    " AND excluded.last_event_id > transactions.last_event_id))"
)
ORDER_FILTER = "entity_type IN ('opportunity', 'sales_order')"
HOLD_FILTER = "status = 'ok' AND list_contains($holds, kind)"
RELEASE_FILTER = "status = 'ok' AND list_contains($releases, kind)"
# A business hold (a credit hold) is on while its latest hold is newer than its
# latest release; ``t`` is the table (or alias) whose columns are read.
_HELD = "({t}held_at IS NOT NULL AND ({t}released_at IS NULL OR {t}held_at > {t}released_at))"

# One upsert over an aggregate of the new events. "First" and "last" order by
# (event_time, event_id) so the summary does not depend on arrival order, except
# amount/currency/customer which keep the first non-null value seen.
UPSERT_TRANSACTIONS = f"""
INSERT INTO transactions (
    correlation_id, order_ref, customer_id, amount, currency, state, started_at,
    updated_at, last_kind, last_system, last_status, event_count, failed_count,
    dead_letter_count, customer_name, order_ref_at, completed_at, last_event_time,
    last_event_id, open_dead_letters, held_at, released_at)
SELECT
    correlation_id,
    arg_min(entity_id, {KEY}) FILTER (WHERE {ORDER_FILTER}),
    arg_min(customer_id, {KEY}) FILTER (WHERE customer_id IS NOT NULL),
    arg_min(amount, {KEY}) FILTER (WHERE amount IS NOT NULL),
    arg_min(currency, {KEY}) FILTER (WHERE currency IS NOT NULL),
    CASE
        WHEN count(*) FILTER (WHERE status = 'ok' AND list_contains($kinds, kind)) > 0
        THEN 'completed'
        WHEN max(event_time) FILTER (WHERE {HOLD_FILTER}) IS NOT NULL
          AND (max(event_time) FILTER (WHERE {RELEASE_FILTER}) IS NULL
            OR max(event_time) FILTER (WHERE {HOLD_FILTER})
             > max(event_time) FILTER (WHERE {RELEASE_FILTER}))
        THEN 'on_hold'
        WHEN arg_max(status, {KEY}) = 'failed' THEN 'failed'
        ELSE 'in_progress' END,
    min(event_time),
    max(event_time),
    arg_max(kind, {KEY}),
    arg_max(source, {KEY}),
    arg_max(status, {KEY}),
    count(*),
    count(*) FILTER (WHERE status = 'failed'),
    count(*) FILTER (WHERE status = 'dead_lettered'),
    arg_min(customer_name, {KEY}) FILTER (WHERE customer_name IS NOT NULL),
    min(event_time) FILTER (WHERE {ORDER_FILTER}),
    min(event_time) FILTER (WHERE status = 'ok' AND list_contains($kinds, kind)),
    max(event_time),
    arg_max(event_id, {KEY}),
    0,
    max(event_time) FILTER (WHERE {HOLD_FILTER}),
    max(event_time) FILTER (WHERE {RELEASE_FILTER})
FROM _new
GROUP BY correlation_id
ON CONFLICT (correlation_id) DO UPDATE SET
    order_ref = CASE
        WHEN transactions.order_ref_at IS NULL
          OR excluded.order_ref_at < transactions.order_ref_at
        THEN coalesce(excluded.order_ref, transactions.order_ref)
        ELSE transactions.order_ref END,
    order_ref_at = least(transactions.order_ref_at, excluded.order_ref_at),
    customer_id = coalesce(transactions.customer_id, excluded.customer_id),
    amount = coalesce(transactions.amount, excluded.amount),
    currency = coalesce(transactions.currency, excluded.currency),
    customer_name = coalesce(transactions.customer_name, excluded.customer_name),
    started_at = least(transactions.started_at, excluded.started_at),
    updated_at = greatest(transactions.updated_at, excluded.updated_at),
    last_kind = CASE WHEN {NEWER} THEN excluded.last_kind ELSE transactions.last_kind END,
    last_system = CASE WHEN {NEWER} THEN excluded.last_system ELSE transactions.last_system END,
    last_status = CASE WHEN {NEWER} THEN excluded.last_status ELSE transactions.last_status END,
    last_event_id = CASE WHEN {NEWER} THEN excluded.last_event_id
        ELSE transactions.last_event_id END,
    last_event_time = greatest(transactions.last_event_time, excluded.last_event_time),
    event_count = transactions.event_count + excluded.event_count,
    failed_count = transactions.failed_count + excluded.failed_count,
    dead_letter_count = transactions.dead_letter_count + excluded.dead_letter_count,
    completed_at = least(transactions.completed_at, excluded.completed_at),
    held_at = greatest(transactions.held_at, excluded.held_at),
    released_at = greatest(transactions.released_at, excluded.released_at),
    -- Dead letters are applied by the refresh below, only when there are any.
    state = CASE
        WHEN transactions.open_dead_letters > 0 THEN 'dead_lettered'
        WHEN transactions.completed_at IS NOT NULL OR excluded.completed_at IS NOT NULL
        THEN 'completed'
        WHEN greatest(transactions.held_at, excluded.held_at) IS NOT NULL
          AND (greatest(transactions.released_at, excluded.released_at) IS NULL
            OR greatest(transactions.held_at, excluded.held_at)
             > greatest(transactions.released_at, excluded.released_at))
        THEN 'on_hold'
        WHEN (CASE WHEN {NEWER} THEN excluded.last_status ELSE transactions.last_status END)
            = 'failed' THEN 'failed'
        ELSE 'in_progress' END
"""

# State follows from stored facts; refreshed for the given keys after every write.
REFRESH_STATES = f"""
UPDATE transactions SET
    open_dead_letters = s.n,
    state = CASE
        WHEN s.n > 0 THEN 'dead_lettered'
        WHEN transactions.completed_at IS NOT NULL THEN 'completed'
        WHEN {_HELD.format(t="transactions.")} THEN 'on_hold'
        WHEN transactions.last_status = 'failed' THEN 'failed'
        ELSE 'in_progress' END
FROM (
    SELECT k.correlation_id, count(d.event_id) AS n
    FROM ({{keys}}) AS k
    LEFT JOIN dead_letters AS d
      ON d.correlation_id = k.correlation_id AND d.state IN ({UNRESOLVED_SQL})
    GROUP BY k.correlation_id
) AS s
WHERE transactions.correlation_id = s.correlation_id
"""

BATCH_KEYS = "SELECT DISTINCT correlation_id FROM _new"
ALL_DEAD_LETTER_KEYS = f"""
SELECT correlation_id FROM transactions WHERE open_dead_letters > 0 OR state = 'dead_lettered'
UNION SELECT correlation_id FROM dead_letters WHERE state IN ({UNRESOLVED_SQL})
"""

SUMMARY_SELECT = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM transactions"


def drop_event_id_key(conn: duckdb.DuckDBPyConnection, layout: EnvelopeLayout = ENVELOPE) -> None:
    """Rebuild an ``events`` table from before schema 3 without its primary key.

    DuckDB cannot drop a key constraint, so the table is copied once, in one
    transaction (a file from before schema 3 is rebuilt on its first open).
    """
    keyed = conn.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'events' "
        "AND constraint_type = 'PRIMARY KEY' AND database_name = current_database()"
    ).fetchone()
    if not keyed or not keyed[0]:
        return
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(events_table(layout, "events_rebuilt"))
        names = ", ".join(
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'events' "
                "AND database_name = current_database() ORDER BY column_index"
            ).fetchall()
        )
        conn.execute(f"INSERT INTO events_rebuilt ({names}) SELECT {names} FROM events")
        conn.execute("DROP TABLE events")
        conn.execute("ALTER TABLE events_rebuilt RENAME TO events")
        for statement in events_indexes():
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def stored_ids(conn: duckdb.DuckDBPyConnection, candidates: list[str]) -> set[str]:
    """The event IDs among ``candidates`` that ``events`` holds."""
    if not candidates:
        return set()
    if len(candidates) <= POINT_LOOKUPS:
        found: set[str] = set()
        for event_id in candidates:
            row = conn.execute("SELECT 1 FROM events WHERE event_id = ?", [event_id]).fetchone()
            if row is not None:
                found.add(event_id)
        return found
    conn.register("_candidates", pa.table({"event_id": pa.array(candidates, pa.string())}))
    try:
        rows = conn.execute(
            "SELECT DISTINCT e.event_id FROM events e SEMI JOIN _candidates USING (event_id)"
        ).fetchall()
    finally:
        conn.unregister("_candidates")
    return {r[0] for r in rows}


def count_open(cur: duckdb.DuckDBPyConnection) -> int:
    row = cur.execute(
        f"SELECT count(*) FROM dead_letters WHERE state IN ({UNRESOLVED_SQL})"
    ).fetchone()
    return int(row[0]) if row else 0
