"""Indicator queries over the DuckDB lineage.

Every event-based indicator is one SQL relation of *verdicts*: ``(vt, good, amount,
customer_id, ref)`` where ``vt`` is the moment the verdict became known. A latency
or completeness verdict is good at the time the milestone arrived, or bad at the
moment its deadline passed with no milestone (no event needed for that); pending
transactions have no verdict yet. Counting verdicts by ``vt`` keeps the short alert
windows honest: a breach lands in the minute it became a breach.

The backlog, stalled and reconciliation drift indicators are time slices: a sample at
each tick of the open backlog, of the transactions overdue at the step they wait for,
or of what the latest reconciliation runs left open. A drift sample can be missing
(no reconcile plug-in, no completed run): that minute has no data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from collector import FlowSteps
from collector.lineage import waiting_sql

from ._drift import drift_as_of
from ._model import (
    ApiErrorRateIndicator,
    BacklogIndicator,
    CompletenessIndicator,
    DuplicateRateIndicator,
    LatencyIndicator,
    Milestone,
    ReconciliationDriftIndicator,
    ResolutionTimeIndicator,
    Rule,
    StalledIndicator,
    SuccessRatioIndicator,
)
from ._sql import execute

__all__ = [
    "BacklogSample",
    "Impact",
    "backlog_sample",
    "count_buckets",
    "count_buckets_many",
    "count_totals",
    "drift_sample",
    "impact",
    "is_sampled",
    "stalled_sample",
    "take_sample",
]


@dataclass(frozen=True, slots=True)
class Impact:
    """What the bad verdicts of a window put at risk."""

    value_at_risk: Decimal
    customers: int
    items: int
    #: The currency of ``value_at_risk``: one ISO code, ``"mixed"`` when the items are
    #: in several (the sum then adds unlike amounts), ``None`` when nothing is at risk.
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class BacklogSample:
    open_count: int
    oldest_age_s: float
    stuck_value: Decimal
    stuck_customers: int
    good: bool
    stuck_count: int = 0
    stuck_currency: str | None = None


def is_sampled(rule: Rule) -> bool:
    """Whether the rule's SLI is a sampled time slice rather than lineage verdicts."""
    return isinstance(
        rule.indicator, BacklogIndicator | StalledIndicator | ReconciliationDriftIndicator
    )


def _us(value: datetime | timedelta) -> int:
    """Epoch (or duration) microseconds: interval arithmetic on TIMESTAMPTZ goes through
    the ICU calendar row by row, integer arithmetic does not."""
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    return int(value.timestamp() * 1_000_000)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join("?" for _ in values) + ")"


def _milestones(
    start_kind: str,
    start_statuses: tuple[str, ...],
    end_kind: str,
    end_statuses: tuple[str, ...],
    deadline: timedelta,
    lo: datetime,
    hi: datetime,
    now: datetime,
    detailed: bool,
) -> tuple[str, list[Any]]:
    d = _us(deadline)
    # Counting needs no amounts and groups faster on a 64-bit hash of the correlation ID
    # than on the string (a collision would merge two of millions: noise, not error).
    key = "correlation_id" if detailed else "hash(correlation_id)"
    details = (
        "any_value(amount) AS amount, any_value(currency) AS currency, "
        "any_value(customer_id) AS customer_id"
        if detailed
        else "NULL AS amount, NULL AS currency, NULL AS customer_id"
    )
    # One pass over both milestones grouped by transaction: cheaper than a join when
    # the whole 30-day span is evaluated from cold.
    sql = f"""
    WITH j AS (
        SELECT {key} AS ref,
               epoch_us(min(event_time) FILTER (
                   WHERE kind = ? AND status IN {_in(start_statuses)})) AS t0,
               epoch_us(min(event_time) FILTER (
                   WHERE kind = ? AND status IN {_in(end_statuses)})) AS t1,
               {details}
        FROM events
        WHERE kind IN (?, ?) AND event_time >= ? AND event_time < ?
        GROUP BY ref
    ), g AS (
        SELECT *, (t1 IS NOT NULL AND t1 >= t0 AND t1 - t0 <= ?) AS good
        FROM j WHERE t0 >= ? AND t0 < ?
    ), v AS (
        SELECT CASE WHEN good THEN t1 ELSE t0 + ? END AS vt, good, amount, currency,
               customer_id, ref
        FROM g
        WHERE good OR t0 + ? <= ?
    )
    SELECT * FROM v WHERE vt >= ? AND vt < ?
    """
    params: list[Any] = [start_kind, *start_statuses, end_kind, *end_statuses]
    params += [start_kind, end_kind, lo - deadline, hi, d, _us(lo - deadline), _us(hi)]
    params += [d, d, _us(now), _us(lo), _us(hi)]
    return sql, params


def verdicts(
    rule: Rule, lo: datetime, hi: datetime, now: datetime, *, detailed: bool = True
) -> tuple[str, list[Any]]:
    """The verdict relation of ``rule`` for verdict times in ``[lo, hi)``.

    ``vt`` is in epoch microseconds.

    ``detailed=False`` is for counting only: ``amount``, ``customer_id`` may be NULL.
    """
    ind = rule.indicator
    hi = min(hi, now)
    if isinstance(ind, LatencyIndicator):
        return _milestones(
            ind.start.kind,
            ind.start.statuses,
            ind.end.kind,
            ind.end.statuses,
            ind.threshold,
            lo,
            hi,
            now,
            detailed,
        )
    if isinstance(ind, CompletenessIndicator):
        return _milestones(
            ind.start.kind,
            ind.start.statuses,
            ind.milestone.kind,
            ind.milestone.statuses,
            ind.deadline,
            lo,
            hi,
            now,
            detailed,
        )
    if isinstance(ind, SuccessRatioIndicator):
        statuses = ind.good_statuses + ind.bad_statuses
        sql = f"""
        SELECT epoch_us(event_time) AS vt, status IN {_in(ind.good_statuses)} AS good,
               amount, currency, customer_id, correlation_id AS ref
        FROM events
        WHERE step = ? AND status IN {_in(statuses)} AND event_time >= ? AND event_time < ?
        """
        return sql, [*ind.good_statuses, ind.step, *statuses, lo, hi]
    if isinstance(ind, DuplicateRateIndicator):
        sql = f"""
        SELECT epoch_us(event_time) AS vt, status <> 'duplicate' AS good,
               -- A duplicate delivery is dropped, not acted on: it puts no money and no
               -- customer at risk (the rate itself is the compliance signal).
               NULL::DECIMAL(18, 2) AS amount, NULL::VARCHAR AS currency,
               NULL::VARCHAR AS customer_id, correlation_id AS ref
        FROM events
        WHERE kind IN {_in(ind.kinds)} AND status IN ('ok', 'duplicate')
          AND event_time >= ? AND event_time < ?
        """
        return sql, [*ind.kinds, lo, hi]
    if isinstance(ind, ApiErrorRateIndicator):
        column = "target" if ind.direction == "outbound" else "source"
        sql = f"""
        SELECT epoch_us(event_time) AS vt, status = 'ok' AS good,
               amount, currency, customer_id, correlation_id AS ref
        FROM events
        WHERE {column} = ? AND status IN ('ok', 'failed', 'retrying', 'dead_lettered')
          AND event_time >= ? AND event_time < ?
        """
        return sql, [ind.system, lo, hi]
    if isinstance(ind, ResolutionTimeIndicator):
        d = _us(ind.threshold)
        states = ind.resolved_states
        sql = f"""
        WITH j AS (
            SELECT event_id AS ref, amount, currency, customer_id,
                   epoch_us(first_failed_at) AS t0,
                   CASE WHEN state IN {_in(states)} THEN epoch_us(state_changed_at) END AS t1
            FROM dead_letters
            WHERE first_failed_at >= ? AND first_failed_at < ?
        ), g AS (
            SELECT *, (t1 IS NOT NULL AND t1 - t0 <= ?) AS good FROM j
        ), v AS (
            SELECT CASE WHEN good THEN t1 ELSE t0 + ? END AS vt, good, amount, currency,
                   customer_id, ref
            FROM g WHERE good OR t0 + ? <= ?
        )
        SELECT * FROM v WHERE vt >= ? AND vt < ?
        """
        return sql, [*states, lo - ind.threshold, hi, d, d, d, _us(now), _us(lo), _us(hi)]
    raise TypeError(f"rule {rule.id} has no verdict query ({ind.kind} is sampled)")


def _epoch_minute(value: datetime) -> int:
    return int(value.timestamp() // 60)


def count_buckets(
    con: duckdb.DuckDBPyConnection, rule: Rule, lo: datetime, hi: datetime, now: datetime
) -> list[tuple[int, int, int]]:
    """``(epoch minute, good, bad)`` for verdicts in ``[lo, hi)``."""
    sql, params = verdicts(rule, lo, hi, now, detailed=False)
    # Columns come back as arrays: a cold 30-day span is 43,200 rows per rule.
    cols = execute(
        con,
        f"""SELECT vt // 60000000 AS m,
                   count(*) FILTER (WHERE good) AS g, count(*) FILTER (WHERE NOT good) AS b
            FROM ({sql}) GROUP BY m""",
        params,
    ).fetchnumpy()
    return list(zip(cols["m"].tolist(), cols["g"].tolist(), cols["b"].tolist(), strict=True))


def _milestone_pair(rule: Rule) -> tuple[Milestone, Milestone, timedelta] | None:
    ind = rule.indicator
    if isinstance(ind, LatencyIndicator):
        return ind.start, ind.end, ind.threshold
    if isinstance(ind, CompletenessIndicator):
        return ind.start, ind.milestone, ind.deadline
    return None


def count_buckets_many(
    con: duckdb.DuckDBPyConnection,
    rules: list[Rule],
    lo: datetime,
    hi: datetime,
    now: datetime,
) -> dict[str, list[tuple[int, int, int]]]:
    """:func:`count_buckets` for several rules; milestone rules that share a start
    milestone share one pass over the events (the costly part of a cold evaluation)."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    groups: dict[Milestone, list[tuple[Rule, Milestone, timedelta]]] = {}
    for rule in rules:
        pair = _milestone_pair(rule)
        if pair is None:
            out[rule.id] = count_buckets(con, rule, lo, hi, now)
        else:
            groups.setdefault(pair[0], []).append((rule, pair[1], pair[2]))
    hi = min(hi, now)
    for start, members in groups.items():
        if len(members) == 1:
            rule = members[0][0]
            out[rule.id] = count_buckets(con, rule, lo, hi, now)
            continue
        longest = max(d for _, _, d in members)
        params: list[Any] = [start.kind, *start.statuses]
        ends = []
        for k, (_, end, _) in enumerate(members):
            ends.append(
                f"epoch_us(min(event_time) FILTER (WHERE kind = ? "
                f"AND status IN {_in(end.statuses)})) AS e{k}"
            )
            params += [end.kind, *end.statuses]
        kinds = [start.kind, *(end.kind for _, end, _ in members)]
        params += [*kinds, lo - longest, hi]
        selects = []
        for k, (_, _, deadline) in enumerate(members):
            d = _us(deadline)
            selects.append(
                f"""SELECT {k} AS r, vt // 60000000 AS m, count(*) FILTER (WHERE good) AS g,
                           count(*) FILTER (WHERE NOT good) AS b
                    FROM (SELECT CASE WHEN good THEN e{k} ELSE t0 + ? END AS vt, good
                          FROM (SELECT t0, e{k},
                                       (e{k} IS NOT NULL AND e{k} >= t0 AND e{k} - t0 <= ?)
                                       AS good
                                FROM j WHERE t0 >= ? AND t0 < ?)
                          WHERE good OR t0 + ? <= ?)
                    WHERE vt >= ? AND vt < ?
                    GROUP BY m"""
            )
            params += [d, d, _us(lo - deadline), _us(hi), d, _us(now), _us(lo), _us(hi)]
        sql = f"""
        WITH j AS MATERIALIZED (
            SELECT hash(correlation_id) AS ref,
                   epoch_us(min(event_time) FILTER (
                       WHERE kind = ? AND status IN {_in(start.statuses)})) AS t0,
                   {", ".join(ends)}
            FROM events
            WHERE kind IN {_in(tuple(kinds))} AND event_time >= ? AND event_time < ?
            GROUP BY ref
        )
        {" UNION ALL ".join(selects)}
        """
        cols = execute(con, sql, params).fetchnumpy()
        rows: dict[str, list[tuple[int, int, int]]] = {rule.id: [] for rule, _, _ in members}
        for r, m, g, b in zip(
            cols["r"].tolist(), cols["m"].tolist(), cols["g"].tolist(), cols["b"].tolist(),
            strict=True,
        ):  # fmt: skip
            rows[members[r][0].id].append((m, g, b))
        out.update(rows)
    return out


def count_totals(
    con: duckdb.DuckDBPyConnection, rule: Rule, lo: datetime, hi: datetime, now: datetime
) -> tuple[int, int]:
    """Good and bad over ``[lo, hi)``; sampled rules read their stored samples."""
    if is_sampled(rule):
        row = execute(
            con,
            """SELECT count(*) FILTER (WHERE good), count(*) FILTER (WHERE NOT good)
               FROM sla_samples WHERE rule_id = ? AND minute_at >= ? AND minute_at < ?""",
            [rule.id, lo, min(hi, now)],
        ).fetchone()
    else:
        sql, params = verdicts(rule, lo, hi, now, detailed=False)
        row = execute(
            con,
            f"SELECT count(*) FILTER (WHERE good), count(*) FILTER (WHERE NOT good) FROM ({sql})",
            params,
        ).fetchone()
    assert row is not None  # an aggregate always yields one row
    return int(row[0] or 0), int(row[1] or 0)


def impact(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    lo: datetime,
    hi: datetime,
    now: datetime,
    *,
    flows: Sequence[FlowSteps] = (),
) -> Impact:
    """Value at risk and customers of the bad verdicts in ``[lo, hi)``, once per item.

    A transaction with several failed attempts counts its amount once.
    """
    if is_sampled(rule):
        sample = take_sample(con, rule, now, flows)
        if sample is None:
            return Impact(Decimal(0), 0, 0)
        return Impact(
            sample.stuck_value, sample.stuck_customers, sample.stuck_count, sample.stuck_currency
        )
    sql, params = verdicts(rule, lo, hi, now)
    row = execute(
        con,
        f"""SELECT coalesce(sum(amount), 0), count(DISTINCT customer_id), count(*),
                   CASE WHEN count(DISTINCT currency) = 1 THEN any_value(currency)
                        WHEN count(DISTINCT currency) > 1 THEN 'mixed' END
            FROM (SELECT ref, any_value(amount) AS amount, any_value(currency) AS currency,
                         any_value(customer_id) AS customer_id
                  FROM ({sql}) WHERE NOT good GROUP BY ref)""",
        params,
    ).fetchone()
    assert row is not None
    return Impact(Decimal(row[0]), int(row[1]), int(row[2]), row[3])


def backlog_sample(con: duckdb.DuckDBPyConnection, rule: Rule, now: datetime) -> BacklogSample:
    """The open backlog now: count, oldest age, and what the over-age items hold."""
    ind = rule.indicator
    if not isinstance(ind, BacklogIndicator):
        raise TypeError(f"rule {rule.id} is not a backlog rule")
    waiting = ind.waiting_kinds or ("",)
    row = execute(
        con,
        f"""SELECT count(*), min(updated_at),
                   coalesce(sum(amount) FILTER (WHERE updated_at <= ?), 0),
                   count(DISTINCT customer_id) FILTER (WHERE updated_at <= ?),
                   count(*) FILTER (WHERE updated_at <= ?),
                   CASE count(DISTINCT currency) FILTER (WHERE updated_at <= ?)
                        WHEN 0 THEN NULL
                        WHEN 1 THEN any_value(currency) FILTER (WHERE updated_at <= ?)
                        ELSE 'mixed' END
            FROM transactions
            WHERE state = 'in_progress' AND coalesce(last_kind, '') NOT IN {_in(waiting)}
              AND updated_at <= ?""",
        [*[now - ind.max_age] * 5, *waiting, now],
    ).fetchone()
    assert row is not None
    count = int(row[0])
    oldest: datetime | None = row[1]
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    good = count <= ind.max_open and age <= ind.max_age.total_seconds()
    return BacklogSample(
        count, max(age, 0.0), Decimal(row[2]), int(row[3]), good, int(row[4]), row[5]
    )


def stalled_sample(
    con: duckdb.DuckDBPyConnection, rule: Rule, now: datetime, flows: Sequence[FlowSteps]
) -> BacklogSample:
    """The stalled transactions now: how many, how long the oldest has been overdue,
    and the value and customers they hold. Without step tables nothing can stall."""
    ind = rule.indicator
    if not isinstance(ind, StalledIndicator):
        raise TypeError(f"rule {rule.id} is not a stalled rule")
    if not flows:
        return BacklogSample(0, 0.0, Decimal(0), 0, True)
    sql, params = waiting_sql(flows, now, stallable_only=True)
    row = execute(
        con,
        f"""WITH w AS ({sql})
            SELECT count(*), min(w.due_us), coalesce(sum(t.amount), 0),
                   count(DISTINCT t.customer_id),
                   CASE WHEN count(DISTINCT t.currency) = 1 THEN any_value(t.currency)
                        WHEN count(DISTINCT t.currency) > 1 THEN 'mixed' END
            FROM w JOIN transactions t USING (correlation_id)
            WHERE w.stalled AND t.state IN ('in_progress', 'failed')""",
        params,
    ).fetchone()
    assert row is not None  # an aggregate always yields one row
    count = int(row[0])
    age = (_us(now) - int(row[1])) / 1_000_000 if row[1] is not None else 0.0
    good = count <= ind.max_stalled
    return BacklogSample(count, max(age, 0.0), Decimal(row[2]), int(row[3]), good, count, row[4])


def drift_sample(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    now: datetime,
    *,
    fresh_since: datetime | None = None,
) -> BacklogSample | None:
    """What the latest completed reconciliation runs left open at ``now``: the open
    discrepancies, the age of the oldest run read, their value at risk and customers.

    ``None`` is no data: the reconcile plug-in's tables are absent, or no run of the
    rule's periods completed (within ``max_run_age``), or, given ``fresh_since`` (when
    the evaluator started), none completed since then: no data *yet*. A run a previous
    process left is not a fresh reading, and counting it as this minute's verdict
    would page on the first minute after a start, before any run has happened."""
    ind = rule.indicator
    if not isinstance(ind, ReconciliationDriftIndicator):
        raise TypeError(f"rule {rule.id} is not a reconciliation drift rule")
    if fresh_since is not None and (
        drift_as_of(con, now, periods=ind.periods, since=fresh_since) is None
    ):
        return None
    since = None if ind.max_run_age is None else now - ind.max_run_age
    drift = drift_as_of(con, now, periods=ind.periods, since=since)
    if drift is None:
        return None
    limit = ind.max_value_at_risk
    good = drift.open <= ind.max_open and (
        limit is None or all(v <= limit for v in drift.value_at_risk.values())
    )
    age = (now - drift.oldest_finished).total_seconds() if drift.oldest_finished else 0.0
    return BacklogSample(
        drift.open,
        max(age, 0.0),
        drift.total_value,
        drift.customers,
        good,
        drift.open,
        drift.currency,
    )


def take_sample(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    now: datetime,
    flows: Sequence[FlowSteps] = (),
    *,
    fresh_since: datetime | None = None,
) -> BacklogSample | None:
    """The sample of a time-slice rule (backlog, stalled or drift) at ``now``; ``None``
    when the rule has no data this minute (``fresh_since``: see ``drift_sample``)."""
    if isinstance(rule.indicator, ReconciliationDriftIndicator):
        return drift_sample(con, rule, now, fresh_since=fresh_since)
    if isinstance(rule.indicator, StalledIndicator):
        return stalled_sample(con, rule, now, flows)
    return backlog_sample(con, rule, now)


def epoch_minute(value: datetime) -> int:
    """The one-minute bucket a timestamp falls in."""
    return _epoch_minute(value)
