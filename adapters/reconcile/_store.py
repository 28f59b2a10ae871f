"""Reconciliation runs and their discrepancies, kept in the lineage's DuckDB file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from ._model import Discrepancy

__all__ = [
    "DDL",
    "explain",
    "explained_ids",
    "finish_run",
    "get_run",
    "list_runs",
    "run_discrepancies",
    "start_run",
]

DDL = """
CREATE TABLE IF NOT EXISTS reconciliation_runs (
    run_id        VARCHAR PRIMARY KEY,
    period        VARCHAR NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    trigger       VARCHAR NOT NULL,          -- api | cli | schedule
    requested_by  VARCHAR NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    status        VARCHAR NOT NULL,          -- running | done | failed
    error         VARCHAR,
    counts        JSON,                      -- records compared, per kind
    timings       JSON,                      -- seconds per system
    in_flight     INTEGER NOT NULL DEFAULT 0,
    discrepancies INTEGER NOT NULL DEFAULT 0,  -- open ones (not explained)
    explained     INTEGER NOT NULL DEFAULT 0,  -- found again, but explained before
    value_at_risk JSON                       -- {currency: amount} of the open ones
);
CREATE TABLE IF NOT EXISTS reconciliation_discrepancies (
    run_id            VARCHAR NOT NULL,
    discrepancy_id    VARCHAR NOT NULL,
    check_name        VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,
    system            VARCHAR NOT NULL,
    record_key        VARCHAR NOT NULL,
    correlation_id    VARCHAR,
    customer_id       VARCHAR,
    customer_name     VARCHAR,
    value_at_risk     DECIMAL(18, 2) NOT NULL,
    currency          VARCHAR,
    expected          VARCHAR,
    found             VARCHAR,
    detail            VARCHAR NOT NULL,
    repair            VARCHAR NOT NULL,
    seen_by_interlock BOOLEAN NOT NULL,
    PRIMARY KEY (run_id, discrepancy_id)
);
CREATE TABLE IF NOT EXISTS reconciliation_explanations (
    discrepancy_id VARCHAR PRIMARY KEY,      -- stable across runs
    reason         VARCHAR NOT NULL,
    explained_by   VARCHAR NOT NULL,
    explained_at   TIMESTAMPTZ NOT NULL
);
"""

_RUN_COLUMNS = (
    "run_id",
    "period",
    "period_start",
    "period_end",
    "trigger",
    "requested_by",
    "started_at",
    "finished_at",
    "status",
    "error",
    "counts",
    "timings",
    "in_flight",
    "discrepancies",
    "explained",
    "value_at_risk",
)
_ITEM_COLUMNS = (
    "discrepancy_id",
    "check_name",
    "kind",
    "system",
    "record_key",
    "correlation_id",
    "customer_id",
    "customer_name",
    "value_at_risk",
    "currency",
    "expected",
    "found",
    "detail",
    "repair",
    "seen_by_interlock",
)
_JSON = frozenset({"counts", "timings", "value_at_risk"})


def start_run(
    conn: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    period: str,
    start: datetime,
    end: datetime,
    trigger: str,
    by: str,
    at: datetime,
) -> None:
    conn.execute(
        "INSERT INTO reconciliation_runs (run_id, period, period_start, period_end, trigger, "
        "requested_by, started_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
        [run_id, period, start, end, trigger, by, at],
    )


def finish_run(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    at: datetime,
    found: Sequence[Discrepancy] = (),
    counts: dict[str, int] | None = None,
    timings: dict[str, float] | None = None,
    in_flight: int = 0,
    error: str | None = None,
    explained: frozenset[str] = frozenset(),
) -> None:
    """Close a run: its discrepancies (or its error) and its totals (the lineage's
    ``write`` makes it one transaction)."""
    open_ones = [d for d in found if d.discrepancy_id not in explained]
    # A deal missing in three systems puts its value at risk once, not three times:
    # per transaction (or record), the largest amount counts.
    largest: dict[tuple[str, str], Decimal] = {}
    for d in open_ones:
        if d.currency and d.value_at_risk:
            key = (d.correlation_id or f"{d.check.value}:{d.key}", d.currency)
            largest[key] = max(largest.get(key, Decimal(0)), d.value_at_risk)
    at_risk: dict[str, str] = {}
    for (_, currency), amount in sorted(largest.items()):
        at_risk[currency] = str(_plus(at_risk.get(currency), amount))
    if found:
        marks = ", ".join("?" for _ in range(len(_ITEM_COLUMNS) + 1))
        conn.executemany(
            f"INSERT INTO reconciliation_discrepancies (run_id, {', '.join(_ITEM_COLUMNS)}) "
            f"VALUES ({marks})",
            [
                [
                    run_id,
                    d.discrepancy_id,
                    d.check.value,
                    d.kind.value,
                    d.system,
                    d.key,
                    d.correlation_id,
                    d.customer_id,
                    d.customer_name,
                    d.value_at_risk,
                    d.currency,
                    d.expected,
                    d.found,
                    d.detail,
                    d.repair.value,
                    d.seen_by_interlock,
                ]
                for d in found
            ],
        )
    conn.execute(
        "UPDATE reconciliation_runs SET finished_at = ?, status = ?, error = ?, counts = ?, "
        "timings = ?, in_flight = ?, discrepancies = ?, explained = ?, value_at_risk = ? "
        "WHERE run_id = ?",
        [
            at,
            "failed" if error else "done",
            error,
            json.dumps(counts or {}),
            json.dumps({k: round(v, 3) for k, v in (timings or {}).items()}),
            in_flight,
            len(open_ones),
            len(found) - len(open_ones),
            json.dumps(at_risk),
            run_id,
        ],
    )


def _plus(a: str | None, b: Decimal) -> Decimal:
    return (Decimal(a) if a else Decimal(0)) + b


def _run(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_RUN_COLUMNS, row, strict=True))
    for key in _JSON:
        out[key] = json.loads(out[key]) if out[key] else {}
    for key in ("period_start", "period_end", "started_at", "finished_at"):
        if out[key] is not None:
            out[key] = out[key].isoformat()
    return out


def list_runs(
    conn: duckdb.DuckDBPyConnection, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    rows = conn.execute(
        f"SELECT {', '.join(_RUN_COLUMNS)} FROM reconciliation_runs "
        "ORDER BY started_at DESC, run_id DESC LIMIT ? OFFSET ?",
        [limit, offset],
    ).fetchall()
    (total,) = conn.execute("SELECT count(*) FROM reconciliation_runs").fetchone() or (0,)
    return [_run(r) for r in rows], int(total)


def get_run(conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {', '.join(_RUN_COLUMNS)} FROM reconciliation_runs WHERE run_id = ?", [run_id]
    ).fetchone()
    return _run(row) if row else None


def run_discrepancies(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    kind: str | None = None,
    system: str | None = None,
) -> list[dict[str, Any]]:
    where, params = ["run_id = ?"], [run_id]
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if system:
        where.append("system = ?")
        params.append(system)
    columns = ", ".join(f"d.{c}" for c in _ITEM_COLUMNS)
    rows = conn.execute(
        f"SELECT {columns}, x.reason, x.explained_by, x.explained_at "
        "FROM reconciliation_discrepancies AS d "
        "LEFT JOIN reconciliation_explanations AS x USING (discrepancy_id) "
        f"WHERE {' AND '.join('d.' + w for w in where)} "
        "ORDER BY d.value_at_risk DESC, d.check_name, d.record_key",
        params,
    ).fetchall()
    items = []
    for row in rows:
        width = len(_ITEM_COLUMNS)
        item = dict(zip(_ITEM_COLUMNS, row[:width], strict=True))
        reason, by, at = row[width:]
        item["explained"] = (
            None if reason is None else {"reason": reason, "by": by, "at": at.isoformat()}
        )
        if item["repair"] == "replay" and item["correlation_id"]:
            # Repairs go through replay's guards: this selection, dry run first.
            item["replay_selection"] = {"correlation_id": item["correlation_id"]}
        item["check"] = item.pop("check_name")
        item["key"] = item.pop("record_key")
        item["value_at_risk"] = str(item["value_at_risk"])
        items.append(item)
    return items


def explained_ids(conn: duckdb.DuckDBPyConnection) -> set[str]:
    rows = conn.execute("SELECT discrepancy_id FROM reconciliation_explanations").fetchall()
    return {r[0] for r in rows}


def explain(
    conn: duckdb.DuckDBPyConnection, discrepancy_id: str, *, reason: str, by: str, at: datetime
) -> None:
    """Mark a discrepancy explained: later runs that find it again show it explained."""
    conn.execute(
        "INSERT INTO reconciliation_explanations VALUES (?, ?, ?, ?) "
        "ON CONFLICT (discrepancy_id) DO UPDATE SET reason = excluded.reason, "
        "explained_by = excluded.explained_by, explained_at = excluded.explained_at",
        [discrepancy_id, reason, by, at],
    )
