"""Reconciliation drift read from the lineage: what the latest completed runs left open.

The reconcile plug-in keeps its runs in the lineage (``reconciliation_runs``,
``reconciliation_discrepancies``, ``reconciliation_explanations``; see
``adapters/reconcile/_store.py``). This room only reads them, by name: without the
plug-in the tables do not exist and every reading here is ``None`` ("no data").

A discrepancy has the same ID in every run that finds it, so one found by both the
day run and the month run counts once; one explained since no longer counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from ._sql import execute

__all__ = ["TABLES", "Drift", "drift_as_of", "runs_between", "tables_present"]

#: What the reconcile plug-in creates; all must exist to read drift.
TABLES = ("reconciliation_runs", "reconciliation_discrepancies", "reconciliation_explanations")


@dataclass(frozen=True, slots=True)
class Drift:
    """The open discrepancies the latest completed run of each period left."""

    #: The runs read: ``{period: run_id}``.
    runs: dict[str, str]
    open: int
    #: ``{currency: amount}`` of the open discrepancies (those with a value).
    value_at_risk: dict[str, Decimal] = field(default_factory=dict)
    customers: int = 0
    #: When the oldest of the runs read finished (how stale the reading is).
    oldest_finished: datetime | None = None

    @property
    def total_value(self) -> Decimal:
        return sum(self.value_at_risk.values(), Decimal(0))

    @property
    def currency(self) -> str | None:
        """One ISO code, ``"mixed"`` for several, ``None`` when nothing is at risk."""
        if not self.value_at_risk:
            return None
        return next(iter(self.value_at_risk)) if len(self.value_at_risk) == 1 else "mixed"


def tables_present(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the reconcile plug-in's tables exist (checked first: a failed query
    would abort the caller's read transaction)."""
    row = con.execute(
        "SELECT count(DISTINCT table_name) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = current_schema() "
        f"AND table_name IN ({', '.join('?' for _ in TABLES)})",
        list(TABLES),
    ).fetchone()
    return row is not None and int(row[0]) == len(TABLES)


def drift_as_of(
    con: duckdb.DuckDBPyConnection,
    at: datetime,
    *,
    periods: Sequence[str] = ("day", "week", "month"),
    since: datetime | None = None,
) -> Drift | None:
    """Drift at ``at`` from the latest run of each of ``periods`` that completed
    (``done``) in ``[since, at]``, counting explanations made by ``at``.

    ``None``: no data (no tables, or no completed run in the span).
    """
    if not periods or not tables_present(con):
        return None
    marks = ", ".join("?" for _ in periods)
    latest = f"""
        SELECT run_id, period, finished_at FROM (
            SELECT run_id, period, finished_at,
                   row_number() OVER (PARTITION BY period
                                      ORDER BY finished_at DESC, run_id DESC) AS n
            FROM reconciliation_runs
            WHERE status = 'done' AND finished_at <= ? AND finished_at >= ?
              AND period IN ({marks})
        ) WHERE n = 1
    """
    floor = since if since is not None else datetime.fromtimestamp(0, at.tzinfo)
    params: list[Any] = [at, floor, *periods]
    runs = execute(con, latest, params).fetchall()
    if not runs:
        return None
    items = f"""
        WITH latest AS ({latest}),
        items AS (
            SELECT d.discrepancy_id, any_value(d.value_at_risk) AS v,
                   any_value(coalesce(d.correlation_id, d.check_name || ':' || d.record_key))
                       AS tx,
                   any_value(d.currency) AS currency, any_value(d.customer_id) AS customer
            FROM reconciliation_discrepancies AS d
            JOIN latest USING (run_id)
            LEFT JOIN reconciliation_explanations AS x
              ON x.discrepancy_id = d.discrepancy_id AND x.explained_at <= ?
            WHERE x.discrepancy_id IS NULL
            GROUP BY d.discrepancy_id
        )
    """
    params = [*params, at]
    totals = execute(
        con, f"{items} SELECT count(*), count(DISTINCT customer) FROM items", params
    ).fetchone()
    assert totals is not None  # an aggregate always yields one row
    by_currency = execute(
        con,
        # A transaction missing in three systems puts its value at risk once.
        f"""{items} SELECT currency, sum(v) FROM (
                SELECT tx, currency, max(v) AS v FROM items
                WHERE currency IS NOT NULL AND v <> 0 GROUP BY tx, currency
            ) GROUP BY currency ORDER BY currency""",
        params,
    ).fetchall()
    return Drift(
        runs={period: run_id for run_id, period, _ in sorted(runs, key=lambda r: r[1])},
        open=int(totals[0]),
        value_at_risk={str(c): Decimal(v) for c, v in by_currency},
        customers=int(totals[1]),
        oldest_finished=min(finished for _, _, finished in runs),
    )


def runs_between(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> tuple[int, int] | None:
    """``(runs, failed)``: reconciliation runs started in ``[start, end)``; ``None``
    without the tables."""
    if not tables_present(con):
        return None
    row = execute(
        con,
        """SELECT count(*), count(*) FILTER (WHERE status = 'failed')
           FROM reconciliation_runs WHERE started_at >= ? AND started_at < ?""",
        [start, end],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
