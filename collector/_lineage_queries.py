"""The lineage store's read queries: transaction summaries (with what each waits
for), one transaction's events and the overview counts
(``LineageStore`` runs them on a reader cursor)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from tracing import ENVELOPE, EnvelopeLayout

from ._lineage_rows import SUMMARY_COLUMNS, event_dict, iso, money, summary_dict
from ._lineage_sql import SUMMARY_SELECT, count_open
from ._waiting import FlowSteps, waiting_for, waiting_sql

__all__ = [
    "TRANSACTION_STATES",
    "lineage_stats",
    "transaction_detail",
    "transactions_page",
]

#: Every state a transaction summary can be in. ``stalled`` is derived when read: an
#: ``in_progress`` (or ``failed``) one whose next step is overdue with no open dead
#: letter (``collector._waiting``). ``on_hold`` is a business hold a flow declares
#: (``FlowSteps.hold_kinds``): visibly waiting, so never stalled.
TRANSACTION_STATES = (
    "in_progress",
    "completed",
    "on_hold",
    "failed",
    "dead_lettered",
    "stalled",
)
_STALLABLE = ("in_progress", "failed")


def annotate(
    cur: duckdb.DuckDBPyConnection,
    flows: Sequence[FlowSteps],
    items: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Add what each summary waits for; an overdue, unaccounted one is ``stalled``."""
    waits = waiting_for(cur, flows, [i["correlation_id"] for i in items], now)
    for item in items:
        wait = waits.get(item["correlation_id"])
        item.update(
            wait.to_dict()
            if wait
            else {"waiting_step": None, "waiting_since": None, "due_at": None}
        )
        if wait is not None and wait.stalled and item["state"] in _STALLABLE:
            item["state"] = "stalled"


def transactions_page(
    cur: duckdb.DuckDBPyConnection,
    flows: Sequence[FlowSteps],
    *,
    limit: int,
    offset: int,
    state: str | None,
    q: str | None,
    now: datetime,
) -> tuple[list[dict[str, Any]], int]:
    """Summaries, most recently updated first, and the total matching."""
    where: list[str] = []
    params: list[Any] = []
    prefix, prefix_params = "", list[Any]()
    if flows and state in ("stalled", *_STALLABLE):
        sql, prefix_params = waiting_sql(flows, now, stallable_only=True)
        prefix = f"WITH _waiting AS ({sql}) "
        stalled = "correlation_id IN (SELECT correlation_id FROM _waiting WHERE stalled)"
        if state == "stalled":
            where.append(f"state IN ({', '.join('?' * len(_STALLABLE))}) AND {stalled}")
            params.extend(_STALLABLE)
        else:
            where.append(f"state = ? AND NOT {stalled}")
            params.append(state)
    elif state:
        where.append("state = ?")
        params.append(state)
    if q:
        needle = q.lower()
        where.append(
            "(contains(lower(correlation_id), ?) OR contains(lower(coalesce(order_ref, '')), ?)"
            " OR contains(lower(coalesce(customer_id, '')), ?)"
            " OR contains(lower(coalesce(customer_name, '')), ?)"
            " OR correlation_id IN (SELECT correlation_id FROM events"
            " WHERE contains(lower(entity_id), ?)))"
        )
        params.extend([needle] * 5)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    params = [*prefix_params, *params]
    order = " ORDER BY updated_at DESC, correlation_id DESC LIMIT ? OFFSET ?"
    total: int | None = None
    if prefix:
        # A derived-state filter: the total rides on the page's rows, so the waiting
        # relation is computed once (a page past the end counts on its own below).
        rows = cur.execute(
            f"{prefix}SELECT {', '.join(SUMMARY_COLUMNS)}, count(*) OVER () "
            f"FROM transactions{clause}{order}",
            [*params, limit, offset],
        ).fetchall()
        total = int(rows[0][-1]) if rows else None
        rows = [r[:-1] for r in rows]
    else:
        rows = cur.execute(f"{SUMMARY_SELECT}{clause}{order}", [*params, limit, offset]).fetchall()
    if total is None:
        total_row = cur.execute(
            f"{prefix}SELECT count(*) FROM transactions{clause}", params
        ).fetchone()
        total = int(total_row[0]) if total_row else 0
    items = [summary_dict(r) for r in rows]
    annotate(cur, flows, items, now)
    return items, total


def transaction_detail(
    cur: duckdb.DuckDBPyConnection,
    flows: Sequence[FlowSteps],
    correlation_id: str,
    now: datetime,
    layout: EnvelopeLayout = ENVELOPE,
) -> dict[str, Any] | None:
    """One summary with its events in event_time order, or ``None``."""
    row = cur.execute(f"{SUMMARY_SELECT} WHERE correlation_id = ?", [correlation_id]).fetchone()
    if row is None:
        return None
    out = summary_dict(row)
    annotate(cur, flows, [out], now)
    cur.execute(
        "SELECT * EXCLUDE (ingested_at) FROM events WHERE correlation_id = ? "
        "ORDER BY event_time, event_id",
        [correlation_id],
    )
    names = [d[0] for d in cur.description or []]
    stored = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    times = {e["event_id"]: e["event_time"] for e in stored}
    # A cause outside this transaction is rare; look those up one by one.
    for cause in {e["causation_id"] for e in stored} - set(times) - {None}:
        found = cur.execute("SELECT event_time FROM events WHERE event_id = ?", [cause]).fetchone()
        if found is not None:
            times[cause] = found[0]
    events = []
    for e in stored:
        item = event_dict(e, layout)
        cause_time = times.get(e["causation_id"]) if e["causation_id"] else None
        item["since_cause_ms"] = (
            None if cause_time is None else (e["event_time"] - cause_time).total_seconds() * 1000.0
        )
        events.append(item)
    out["events"] = events
    return out


def lineage_stats(
    cur: duckdb.DuckDBPyConnection, flows: Sequence[FlowSteps], now: datetime
) -> dict[str, Any]:
    """Counts for the overview; stalled transactions count as ``stalled``."""
    by_state: dict[str, int] = dict.fromkeys(TRANSACTION_STATES, 0)
    totals: dict[str, Decimal] = {}
    for state, n, total in cur.execute(
        "SELECT state, count(*), sum(amount) FROM transactions GROUP BY state"
    ).fetchall():
        by_state[state] = int(n)
        totals[state] = Decimal(total or 0)
    if flows:
        sql, params = waiting_sql(flows, now, stallable_only=True)
        for state, n, total in cur.execute(
            f"WITH _waiting AS ({sql}) SELECT t.state, count(*), sum(t.amount) "
            "FROM transactions t JOIN _waiting w USING (correlation_id) "
            f"WHERE w.stalled AND t.state IN ({', '.join('?' * len(_STALLABLE))}) "
            "GROUP BY t.state",
            [*params, *_STALLABLE],
        ).fetchall():
            by_state[state] -= int(n)
            by_state["stalled"] += int(n)
            totals[state] -= Decimal(total or 0)
            totals["stalled"] = totals.get("stalled", Decimal(0)) + Decimal(total or 0)
    value = {state: money(total) or "0.00" for state, total in totals.items()}
    by_system = {
        s: int(n)
        for s, n in cur.execute(
            "SELECT source, count(*) FROM events GROUP BY source ORDER BY source"
        ).fetchall()
    }
    by_status = {
        s: int(n)
        for s, n in cur.execute(
            "SELECT status, count(*) FROM events GROUP BY status ORDER BY status"
        ).fetchall()
    }
    last = cur.execute("SELECT max(event_time) FROM events").fetchone()
    dups = cur.execute(
        "SELECT value FROM ingest_counters WHERE name = 'duplicates_dropped'"
    ).fetchone()
    return {
        "events_total": sum(by_system.values()),
        "transactions_total": sum(by_state.values()),
        "transactions_by_state": by_state,
        "dead_letters_open": count_open(cur),
        "duplicates_dropped": int(dups[0]) if dups else 0,
        "events_by_system": by_system,
        "events_by_status": by_status,
        "value_by_state": value,
        "bus_backlog": 0,
        "last_event_at": iso(last[0]) if last else None,
    }
