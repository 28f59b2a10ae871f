"""The ``stalled`` indicator: a time slice, bad while any transaction is overdue at the
step it waits for (by its flow's step table) with no open dead letter."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from _sla_helpers import T0, Builder, FakeClock

from collector import FlowStep, FlowSteps
from sla_rules import SlaEngine, load_rules

SHIPPED = {rule.id: rule for rule in load_rules()}
m = timedelta(minutes=1)
FLOW = FlowSteps(
    "demo",
    "opportunity.closed_won",
    (
        FlowStep("erp.order.create", 15 * m),
        FlowStep("billing.subscription.create", 15 * m),
    ),
)


def _started(build: Builder, corr: str, at, *, amount: float = 1000.0, customer="001A") -> None:
    build.transaction(corr, at, at + m, amount=amount, customer=customer)
    build.event("opportunity.closed_won", at, corr=corr, step="crm.opportunity.closed_won")
    build.event("order.created", at + m, corr=corr, step="erp.order.create")


async def test_stalled_is_sampled_and_alerts(lineage, build: Builder, clock: FakeClock) -> None:
    rule = SHIPPED["stalled-transactions"]
    assert rule.indicator.kind == "stalled" and rule.runbook == "docs/runbooks/stalled.md"
    _started(build, "stuck", T0 - 40 * m, amount=700, customer="001B")  # due T0-24m
    _started(build, "dead", T0 - 40 * m)  # as late, but its dead letter accounts for it
    lineage.con.execute(
        "INSERT INTO dead_letters (event_id, correlation_id, step, kind, reason, attempts, "
        "first_failed_at, last_failed_at, state, state_changed_at) VALUES "
        "('d1', 'dead', 'billing.subscription.create', 'subscription.created', 'rate_limit', "
        "3, ?, ?, 'open', ?)",
        [T0 - 38 * m, T0 - 38 * m, T0 - 38 * m],
    )
    _started(build, "fresh", T0 - 5 * m)  # within its deadline
    build.transaction("done", T0 - 60 * m, T0 - 50 * m, state="completed")
    engine = SlaEngine(lineage, [rule], clock=clock, flows=(FLOW,))
    [status] = await engine.tick()
    assert status.details == {"open": 1.0, "oldest_age_s": 24 * 60.0}
    assert (status.good, status.bad) == (0, 1)
    [alert] = engine.alerts()
    assert (alert.value_at_risk, alert.customers_affected) == (Decimal("700.00"), 1)

    # The subscription arrives: nothing is stalled the next minute.
    build.event("subscription.created", T0, corr="stuck", step="billing.subscription.create")
    clock.advance(minutes=1)
    [status] = await engine.tick()
    assert status.details["open"] == 0.0
    assert (status.good, status.bad) == (1, 1)

    # Twenty minutes on, "fresh" is overdue too.
    clock.advance(minutes=20)
    [status] = await engine.tick()
    assert status.details["open"] == 1.0


async def test_without_step_tables_nothing_stalls(lineage, build: Builder, clock) -> None:
    _started(build, "stuck", T0 - 40 * m)
    [status] = await SlaEngine(lineage, [SHIPPED["stalled-transactions"]], clock=clock).tick()
    assert (status.good, status.bad) == (1, 0)
