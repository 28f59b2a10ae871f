"""The SLA evaluator: incremental, on a schedule inside the collector process.

Each tick recomputes only the one-minute verdict buckets that can have changed: the
minutes since the previous tick, plus any minute touched by events ingested late
(found through the ``ingested_at`` watermark). The first tick computes the whole
span from the lineage. Rule statuses, backlog samples, alerts and every alert state
change are stored in the engine's own tables through the lineage writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import duckdb

from collector import FlowSteps

from ._alerts import Alert, AlertBook, AlertChange
from ._indicators import (
    BacklogSample,
    Impact,
    count_buckets_many,
    epoch_minute,
    impact,
    is_sampled,
    take_sample,
)
from ._maths import (
    BucketSeries,
    budget_remaining_observed,
    burn_rate,
    enough_data,
    minutes,
    sli,
)
from ._model import Rule
from ._sql import execute

__all__ = ["ENGINE_DDL", "LineageAccess", "RuleStatus", "SlaEngine", "utcnow", "window_label"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ENGINE_DDL = """
CREATE TABLE IF NOT EXISTS sla_results (
    rule_id          VARCHAR NOT NULL,
    evaluated_at     TIMESTAMPTZ NOT NULL,
    sli              DOUBLE NOT NULL,
    good             BIGINT NOT NULL,
    bad              BIGINT NOT NULL,
    budget_remaining DOUBLE NOT NULL,
    burn_rates       JSON NOT NULL,
    firing           VARCHAR,
    PRIMARY KEY (rule_id, evaluated_at)
);
CREATE TABLE IF NOT EXISTS sla_samples (
    rule_id      VARCHAR NOT NULL,
    minute_at    TIMESTAMPTZ NOT NULL,
    open_count   BIGINT NOT NULL,
    oldest_age_s DOUBLE NOT NULL,
    good         BOOLEAN NOT NULL,
    PRIMARY KEY (rule_id, minute_at)
);
CREATE TABLE IF NOT EXISTS sla_alerts (
    alert_id           VARCHAR PRIMARY KEY,
    rule_id            VARCHAR NOT NULL,
    rule_name          VARCHAR NOT NULL,
    scope              VARCHAR NOT NULL,
    impact_tier        VARCHAR NOT NULL,
    severity           VARCHAR NOT NULL,
    condition          VARCHAR NOT NULL,
    state              VARCHAR NOT NULL,   -- firing | acknowledged | resolved
    opened_at          TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    value_at_risk      DECIMAL(18, 2) NOT NULL,
    peak_value_at_risk DECIMAL(18, 2) NOT NULL,
    customers_affected INTEGER NOT NULL,
    items              INTEGER NOT NULL,
    score              DOUBLE NOT NULL,
    burn_long          DOUBLE NOT NULL,
    burn_short         DOUBLE NOT NULL,
    acknowledged_by    VARCHAR,
    acknowledged_at    TIMESTAMPTZ,
    ack_note           VARCHAR,
    resolved_at        TIMESTAMPTZ,
    clear_since        TIMESTAMPTZ,
    flaps              INTEGER NOT NULL,
    summary            VARCHAR NOT NULL,
    currency           VARCHAR            -- of value_at_risk; 'mixed' for several
);
ALTER TABLE sla_alerts ADD COLUMN IF NOT EXISTS currency VARCHAR;
ALTER TABLE sla_alerts ADD COLUMN IF NOT EXISTS risk_tier VARCHAR DEFAULT 'at_risk';
CREATE TABLE IF NOT EXISTS sla_alert_changes (
    alert_id   VARCHAR NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    from_state VARCHAR,
    to_state   VARCHAR NOT NULL,
    by_whom    VARCHAR NOT NULL,
    note       VARCHAR
);
"""

_ALERT_COLUMNS = [
    "alert_id", "rule_id", "rule_name", "scope", "impact_tier", "severity", "condition",
    "state", "opened_at", "updated_at", "value_at_risk", "peak_value_at_risk",
    "customers_affected", "items", "score", "burn_long", "burn_short", "acknowledged_by",
    "acknowledged_at", "ack_note", "resolved_at", "clear_since", "flaps", "summary",
    "currency", "risk_tier",
]  # fmt: skip


class LineageAccess(Protocol):
    """The collector's lineage store: ``fn`` runs with a DuckDB connection, off the loop.

    ``write`` runs ``fn`` in a transaction on the single writer thread.
    """

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T: ...

    async def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """A bare time (from a query string) means UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def window_label(window: timedelta) -> str:
    """``timedelta(hours=1)`` → ``"1h"`` (the label used in metrics and the API)."""
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass
class RuleStatus:
    """One rule after one evaluation."""

    rule_id: str
    name: str
    service: str
    kind: str
    impact_tier: str
    scope: str
    objective: float
    window: str
    evaluated_at: datetime
    sli: float
    good: int
    bad: int
    error_budget_remaining: float
    burn_rates: dict[str, float]
    sli_by_window: dict[str, float]
    firing: str | None = None
    condition: str | None = None
    alert_id: str | None = None
    details: dict[str, float] = field(default_factory=dict)
    #: A sampled rule found nothing to sample this tick (a drift rule without the
    #: reconcile plug-in's tables or a completed run): no verdict was counted.
    no_data: bool = False
    #: Minutes of ``window`` that hold data (from the first counted minute to now).
    observed_minutes: int = 0
    window_minutes: int = 0
    #: The rule's runbook (``docs/runbooks/<name>.md``), served by the dashboard.
    runbook: str = ""

    @property
    def compliant(self) -> bool:
        return self.sli >= self.objective

    @property
    def enough_data(self) -> bool:
        """Whether enough of the window is observed to judge it (``MIN_OBSERVED_SHARE``)."""
        return enough_data(self.observed_minutes, self.window_minutes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evaluated_at"] = self.evaluated_at.isoformat()
        data["compliant"] = self.compliant
        data["enough_data"] = self.enough_data
        return data


def _windows(rule: Rule) -> list[timedelta]:
    found = {rule.window}
    for _, _, tier in rule.alerting.tiers():
        found |= {tier.long, tier.short}
    return sorted(found)


class SlaEngine:
    """Evaluates ``rules`` against the lineage every ``interval`` seconds.

    >>> engine = SlaEngine(lineage, load_rules())      # doctest: +SKIP
    >>> await engine.start(); ...; await engine.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        lineage: LineageAccess,
        rules: Sequence[Rule],
        *,
        clock: Callable[[], datetime] = utcnow,
        interval: float = 15.0,
        flows: Sequence[FlowSteps] = (),
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.lineage = lineage
        # The flows' step tables, for the ``stalled`` indicator.
        self.flows = tuple(flows)
        self.rules = list(rules)
        if not self.flows and any(r.indicator.kind == "stalled" for r in self.rules):
            log.warning("stalled rules are loaded but no flow step table is: nothing can stall")
        self.clock = clock
        self.interval = interval
        self._by_id = {rule.id: rule for rule in self.rules}
        self._span = max(minutes(w) for r in self.rules for w in _windows(r)) if rules else 1
        self._series: dict[str, BucketSeries] = {}
        self._book = AlertBook()
        self._status: list[RuleStatus] = []
        self._ready = False
        self._last_now: datetime | None = None
        self._watermark: datetime | None = None
        #: When the first tick ran; drift rules have no data until a reconciliation
        #: run completes after it (``_fresh`` holds those that have had one).
        self._started_at: datetime | None = None
        self._fresh: set[str] = set()
        self._last_result_minute: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_tick_seconds = 0.0
        #: Verdicts seen since start, per rule: ``[good, bad]``; exposed as a counter so
        #: Prometheus can compute its own burn rates from ``rate()``.
        self.counts: dict[str, list[int]] = {rule.id: [0, 0] for rule in self.rules}
        #: Called with each alert acknowledged (after it is stored); errors are logged.
        self.ack_listeners: list[Callable[[Alert], Awaitable[None]]] = []

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Create the engine's tables, load open alerts, and start ticking."""
        await self._setup()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sla-engine")

    async def stop(self) -> None:
        """Stop ticking; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            # The evaluator must outlive one bad tick (a locked file, a bad row); the
            # error is logged with its trace and the next tick tries again.
            except Exception:
                log.exception("SLA evaluation tick failed")
            await asyncio.sleep(self.interval)

    async def _setup(self) -> None:
        if self._ready:
            return

        def create(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            con.execute(ENGINE_DDL)
            return con.execute(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM sla_alerts").fetchall()

        for row in await self.lineage.write(create):
            alert = Alert(**dict(zip(_ALERT_COLUMNS, row, strict=True)))
            alert.value_at_risk = Decimal(alert.value_at_risk)
            alert.peak_value_at_risk = Decimal(alert.peak_value_at_risk)
            self._book.alerts[alert.alert_id] = alert
        self._ready = True

    # -- evaluation --------------------------------------------------------------

    async def tick(self) -> list[RuleStatus]:
        """Evaluate every rule once; returns (and keeps) their statuses."""
        async with self._lock:
            await self._setup()
            started = asyncio.get_running_loop().time()
            now = self.clock()
            statuses = await self._evaluate(now)
            self.last_tick_seconds = asyncio.get_running_loop().time() - started
            return statuses

    async def _evaluate(self, now: datetime) -> list[RuleStatus]:
        end = epoch_minute(now) + 1
        cold = self._last_now is None
        previous = self._last_now
        watermark = self._watermark
        if self._started_at is None:
            self._started_at = now
        started_at, fresh = self._started_at, frozenset(self._fresh)

        def read(
            con: duckdb.DuckDBPyConnection,
        ) -> tuple[dict[str, list[tuple[int, int, int]]], dict[str, BacklogSample], Any, Any]:
            if cold:
                row = execute(con, "SELECT max(ingested_at) FROM events").fetchone()
                new_mark = row[0] if row else None
                lo = datetime.fromtimestamp((end - self._span) * 60, UTC)
            else:
                row = execute(
                    con,
                    "SELECT min(event_time), max(ingested_at) FROM events WHERE ingested_at > ?",
                    [watermark or datetime.fromtimestamp(0, UTC)],
                ).fetchone()
                late, new_mark = (row[0], row[1]) if row else (None, None)
                assert previous is not None
                lo = previous.replace(second=0, microsecond=0)
                if late is not None and late < lo:
                    lo = max(late, now - timedelta(minutes=self._span))
            buckets: dict[str, list[tuple[int, int, int]]] = {}
            samples: dict[str, BacklogSample] = {}
            event_rules = [rule for rule in self.rules if not is_sampled(rule)]
            buckets.update(count_buckets_many(con, event_rules, lo, now, now))
            for rule in self.rules:
                if is_sampled(rule):
                    sample = take_sample(
                        con,
                        rule,
                        now,
                        self.flows,
                        fresh_since=None if rule.id in fresh else started_at,
                    )
                    if sample is not None:  # None: no data this minute (nothing to count)
                        samples[rule.id] = sample
                    if cold:
                        buckets[rule.id] = [
                            (int(m), int(g), 1 - int(g))
                            for m, g in execute(
                                con,
                                """SELECT CAST(floor(epoch(minute_at) / 60) AS BIGINT), good
                                   FROM sla_samples WHERE rule_id = ? AND minute_at >= ?""",
                                [rule.id, lo],
                            ).fetchall()
                        ]
            return buckets, samples, lo, new_mark

        buckets, samples, lo, new_mark = await self.lineage.read(read)
        self._fresh |= samples.keys()
        lo_min = epoch_minute(lo)
        for rule in self.rules:
            series = self._series.get(rule.id)
            if series is None:
                series = self._series[rule.id] = BucketSeries.empty(self._span, end)
            series.advance(end)
            touched_lo = min(lo_min, end - 1)
            before = series.range_sums(touched_lo, end)
            if not is_sampled(rule):
                series.clear(lo_min, end)
            for minute, good, bad in buckets.get(rule.id, []):
                series.put(minute, good, bad)
            if rule.id in samples:
                sample = samples[rule.id]
                series.put(end - 1, int(sample.good), int(not sample.good))
            after = series.range_sums(touched_lo, end)
            # A counter only grows: a late correction that lowers a count is not undone.
            self.counts[rule.id][0] += max(0, after[0] - before[0])
            self.counts[rule.id][1] += max(0, after[1] - before[1])
        self._last_now = now
        if new_mark is not None:
            self._watermark = new_mark

        statuses: list[RuleStatus] = []
        firing: dict[str, tuple[str, str, float, float, timedelta]] = {}
        for rule in self.rules:
            status, fire = self._status_of(rule, now, samples.get(rule.id))
            statuses.append(status)
            if fire is not None:
                firing[rule.id] = fire

        impacts: dict[str, Impact] = {}
        if firing:

            def read_impacts(con: duckdb.DuckDBPyConnection) -> dict[str, Impact]:
                return {
                    rule_id: impact(
                        con, self._by_id[rule_id], now - fire[4], now, now, flows=self.flows
                    )
                    for rule_id, fire in firing.items()
                }

            impacts = await self.lineage.read(read_impacts)

        changes: list[AlertChange] = []
        touched: list[Alert] = []
        for rule, status in zip(self.rules, statuses, strict=True):
            fire = firing.get(rule.id)
            alert, rule_changes = self._book.observe(
                rule, now, fire[:4] if fire else None, impacts.get(rule.id)
            )
            changes.extend(rule_changes)
            if alert is not None and (alert.open or rule_changes):
                touched.append(alert)
                if alert.open:
                    status.alert_id = alert.alert_id
        await self._persist(now, statuses, samples, touched, changes)
        self._status = statuses
        return statuses

    def _status_of(
        self, rule: Rule, now: datetime, sample: BacklogSample | None
    ) -> tuple[RuleStatus, tuple[str, str, float, float, timedelta] | None]:
        series = self._series[rule.id]
        burns: dict[str, float] = {}
        slis: dict[str, float] = {}
        for window in _windows(rule):
            good, bad = series.window(minutes(window))
            burns[window_label(window)] = round(burn_rate(good, bad, rule.objective), 6)
            slis[window_label(window)] = round(sli(good, bad), 6)
        window_minutes = minutes(rule.window)
        good, bad = series.window(window_minutes)
        observed = series.observed(window_minutes)
        fire: tuple[str, str, float, float, timedelta] | None = None
        for name, severity, tier in rule.alerting.tiers():
            long_burn = burns[window_label(tier.long)]
            short_burn = burns[window_label(tier.short)]
            if long_burn > tier.burn_rate and short_burn > tier.burn_rate:
                fire = (name, severity, long_burn, short_burn, tier.long)
                break
        details: dict[str, float] = {}
        if sample is not None:
            details = {"open": float(sample.open_count), "oldest_age_s": sample.oldest_age_s}
            if rule.indicator.kind == "reconciliation_drift":
                details["value_at_risk"] = float(sample.stuck_value)
                details["customers"] = float(sample.stuck_customers)
        status = RuleStatus(
            rule_id=rule.id,
            name=rule.name,
            service=rule.service,
            kind=rule.indicator.kind,
            impact_tier=rule.impact_tier.value,
            scope=rule.scope,
            objective=rule.objective,
            window=window_label(rule.window),
            evaluated_at=now,
            sli=round(sli(good, bad), 6),
            good=good,
            bad=bad,
            error_budget_remaining=round(
                budget_remaining_observed(good, bad, rule.objective, observed, window_minutes), 6
            ),
            burn_rates=burns,
            sli_by_window=slis,
            firing=fire[1] if fire else None,
            condition=fire[0] if fire else None,
            details=details,
            no_data=is_sampled(rule) and sample is None,
            observed_minutes=observed,
            window_minutes=window_minutes,
            runbook=rule.runbook,
        )
        return status, fire

    async def _persist(
        self,
        now: datetime,
        statuses: list[RuleStatus],
        samples: dict[str, BacklogSample],
        alerts: list[Alert],
        changes: list[AlertChange],
    ) -> None:
        minute = epoch_minute(now)
        # History keeps one row per rule per minute: ticks are every few seconds, a
        # chart or report needs no finer grain.
        results = [s for s in statuses if self._last_result_minute.get(s.rule_id) != minute]
        minute_at = datetime.fromtimestamp(minute * 60, UTC)

        def write(con: duckdb.DuckDBPyConnection) -> None:
            for s in results:
                execute(con,
                    "INSERT OR REPLACE INTO sla_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [s.rule_id, now, s.sli, s.good, s.bad, s.error_budget_remaining,
                     json.dumps(s.burn_rates), s.firing],
                )  # fmt: skip
            for rule_id, sample in samples.items():
                execute(
                    con,
                    "INSERT OR REPLACE INTO sla_samples VALUES (?, ?, ?, ?, ?)",
                    [rule_id, minute_at, sample.open_count, sample.oldest_age_s, sample.good],
                )
            for alert in alerts:
                execute(
                    con,
                    f"INSERT OR REPLACE INTO sla_alerts ({', '.join(_ALERT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _ALERT_COLUMNS)})",
                    [getattr(alert, c) for c in _ALERT_COLUMNS],
                )
            for change in changes:
                execute(con,
                    "INSERT INTO sla_alert_changes VALUES (?, ?, ?, ?, ?, ?)",
                    [change.alert_id, change.at, change.from_state, change.to_state,
                     change.by, change.note],
                )  # fmt: skip

        await self.lineage.write(write)
        for s in results:
            self._last_result_minute[s.rule_id] = minute

    # -- queries and actions -----------------------------------------------------

    def status(self) -> list[RuleStatus]:
        """The statuses of the last evaluation (empty before the first tick)."""
        return list(self._status)

    def rule(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def alerts(
        self, *, state: str | None = None, include_resolved: bool = False, limit: int = 200
    ) -> list[Alert]:
        """Alerts sorted by impact score (highest first); open ones unless asked."""
        return self._book.ranked(state, include_resolved)[:limit]

    async def acknowledge(self, alert_id: str, by: str, note: str | None = None) -> Alert:
        """Mark a firing alert acknowledged by ``by``; recorded with who and when."""
        async with self._lock:
            await self._setup()
            change = self._book.acknowledge(alert_id, by, note, self.clock())
            alert = self._book.alerts[alert_id]

            def write(con: duckdb.DuckDBPyConnection) -> None:
                execute(
                    con,
                    "UPDATE sla_alerts SET state = ?, acknowledged_by = ?, acknowledged_at = ?, "
                    "ack_note = ?, updated_at = ? WHERE alert_id = ?",
                    [alert.state, by, change.at, note, change.at, alert_id],
                )
                execute(
                    con,
                    "INSERT INTO sla_alert_changes VALUES (?, ?, ?, ?, ?, ?)",
                    [alert_id, change.at, change.from_state, change.to_state, by, note],
                )

            await self.lineage.write(write)
        for listener in list(self.ack_listeners):
            try:
                await listener(alert)
            except Exception:
                log.exception("alert acknowledgement listener failed")
        return alert

    async def alert_changes(self, alert_id: str) -> list[dict[str, Any]]:
        """Every recorded state change of an alert, oldest first."""

        def read(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            return execute(
                con,
                "SELECT changed_at, from_state, to_state, by_whom, note FROM sla_alert_changes "
                "WHERE alert_id = ? ORDER BY changed_at",
                [alert_id],
            ).fetchall()

        return [
            {"at": at.isoformat(), "from": f, "to": t, "by": by, "note": note}
            for at, f, t, by, note in await self.lineage.read(read)
        ]

    async def history(
        self, rule_id: str, since: datetime | None = None, until: datetime | None = None,
        limit: int = 1440,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Stored evaluations of one rule, newest first (one per minute)."""
        await self._setup()
        until = _aware(until or self.clock())
        since = _aware(since or until - timedelta(days=1))

        def read(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            return execute(
                con,
                "SELECT evaluated_at, sli, good, bad, budget_remaining, burn_rates, firing "
                "FROM sla_results WHERE rule_id = ? AND evaluated_at >= ? AND evaluated_at <= ? "
                "ORDER BY evaluated_at DESC LIMIT ?",
                [rule_id, since, until, limit],
            ).fetchall()

        return [
            {
                "evaluated_at": at.isoformat(),
                "sli": value,
                "good": good,
                "bad": bad,
                "error_budget_remaining": remaining,
                "burn_rates": json.loads(burns),
                "firing": firing,
            }
            for at, value, good, bad, remaining, burns, firing in await self.lineage.read(read)
        ]
