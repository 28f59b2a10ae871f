"""Known answers for each indicator kind, on small hand-built lineages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from _sla_helpers import T0, Builder, FakeClock, rule_doc

from sla_rules import Rule, SlaEngine, load_rules

SHIPPED = {rule.id: rule for rule in load_rules()}
m = timedelta(minutes=1)


async def _one(lineage, rule: Rule, clock: FakeClock):
    engine = SlaEngine(lineage, [rule], clock=clock)
    [status] = await engine.tick()
    return engine, status


async def test_latency_counts_breaches_stuck_and_pending(lineage, build: Builder, clock):
    def won(corr, at, amount, customer="001A"):
        build.event("opportunity.closed_won", at, corr=corr, source="crm", amount=amount,
                    customer=customer)  # fmt: skip

    def order(corr, at, status="ok"):
        build.event("order.created", at, corr=corr, status=status, target="erp")

    won("c1", T0 - 60 * m, 1000)
    order("c1", T0 - 58 * m)  # good: 2 minutes
    won("c2", T0 - 50 * m, 2000, "001B")
    order("c2", T0 - 40 * m)  # bad: 10 minutes
    won("c3", T0 - 30 * m, 3000, "001C")  # stuck: never created, deadline passed
    won("c4", T0 - 3 * m, 4000)  # pending: still inside 5 minutes
    won("c5", T0 - 20 * m, 5000)
    order("c5", T0 - 19 * m, "retrying")
    order("c5", T0 - 18 * m)  # good after a retry
    won("c6", T0 - 10 * m, 6000)
    build.event("opportunity.closed_won", T0 - 9 * m, corr="c6", source="crm", status="duplicate")
    order("c6", T0 - 9 * m)  # good, counted once despite the duplicate delivery

    engine, status = await _one(lineage, SHIPPED["closed-won-to-erp-order"], clock)
    assert (status.good, status.bad) == (3, 2)
    assert status.sli == 0.6
    # The 30-day budget over the hour observed (first verdict 59 minutes ago), not as if
    # the hour were the whole window (that read -3,900 %); an hour is too little data.
    assert (status.observed_minutes, status.window_minutes) == (59, 30 * 24 * 60)
    assert status.error_budget_remaining == round(1 - (0.4 / 0.01) * 59 / 43_200, 6)
    assert not status.enough_data and status.to_dict()["enough_data"] is False
    [alert] = engine.alerts()
    assert alert.value_at_risk == Decimal("5000.00")  # c2 + c3
    assert alert.customers_affected == 2
    assert alert.items == 2

    # Time passes with no event: c4 crosses its deadline and turns bad by itself.
    clock.advance(minutes=5)
    [status] = await engine.tick()
    assert (status.good, status.bad) == (3, 3)
    assert engine.alerts()[0].value_at_risk == Decimal("9000.00")


async def test_completeness_needs_no_event_to_be_bad(lineage, build: Builder, clock):
    build.event("opportunity.closed_won", T0 - 5 * 60 * m, corr="a", source="crm")
    build.event("entitlement.activated", T0 - 4 * 60 * m - 10 * m, corr="a", target="support")
    build.event("opportunity.closed_won", T0 - 3 * 60 * m, corr="b", source="crm")
    build.event("entitlement.activated", T0 - 60 * m, corr="b", target="support")  # 2h: late
    build.event("opportunity.closed_won", T0 - 2 * 60 * m, corr="c", source="crm")  # silent
    build.event("opportunity.closed_won", T0 - 30 * m, corr="d", source="crm")  # pending
    _, status = await _one(lineage, SHIPPED["entitlement-completeness"], clock)
    assert (status.good, status.bad) == (1, 2)


async def test_success_ratio_counts_final_outcomes_only(lineage, build: Builder, clock):
    for i, st in enumerate(["ok", "ok", "retrying", "retrying", "ok", "dead_lettered"]):
        build.event("invoice.posted", T0 - (10 - i) * m, corr=f"i{i}", status=st,
                    step="erp.invoice.post", target="erp")  # fmt: skip
    build.event("invoice.paid", T0 - 5 * m, corr="x", step="billing.invoice.received")
    _, status = await _one(lineage, SHIPPED["invoice-sync-success"], clock)
    assert (status.good, status.bad) == (3, 1)
    assert status.sli == 0.75


async def test_duplicate_rate(lineage, build: Builder, clock):
    for i in range(4):
        build.event("opportunity.closed_won", T0 - (20 - i) * m, corr=f"o{i}", source="crm")
    build.event("opportunity.closed_won", T0 - 10 * m, corr="o1", status="duplicate")
    build.event("invoice.paid", T0 - 9 * m, corr="o1", source="billing")
    build.event("invoice.paid", T0 - 8 * m, corr="o2", source="billing")
    build.event("invoice.paid", T0 - 7 * m, corr="o2", source="billing", status="duplicate")
    build.event("order.created", T0 - 7 * m, corr="o2", status="duplicate")  # not watched
    _, status = await _one(lineage, SHIPPED["duplicate-rate"], clock)
    assert (status.good, status.bad) == (6, 2)


async def test_exception_resolution_time(lineage, build: Builder, clock):
    h = timedelta(hours=1)
    build.dead_letter(T0 - 10 * h, state="resolved", changed=T0 - 9 * h)  # good: 1h
    build.dead_letter(T0 - 10 * h, state="resolved", changed=T0 - 5 * h, amount=100)  # 5h: bad
    build.dead_letter(T0 - 6 * h, amount=250, customer="001Z")  # still open past 4h: bad
    build.dead_letter(T0 - 1 * h)  # open, inside its 4 hours: pending
    build.dead_letter(T0 - 8 * h, state="ignored", changed=T0 - 7 * h)  # consciously ignored
    _, status = await _one(lineage, SHIPPED["exception-resolution"], clock)
    assert (status.good, status.bad) == (2, 2)


async def test_api_error_rate_per_system(lineage, build: Builder, clock):
    for i, st in enumerate(["ok"] * 5 + ["retrying", "retrying", "dead_lettered"]):
        build.event("order.created", T0 - (30 - i) * m, corr=f"e{i}", status=st, target="erp")
    build.event("subscription.created", T0 - 5 * m, target="billing", status="retrying")
    for i in range(3):
        build.event("invoice.paid", T0 - (9 - i) * m, corr=f"p{i}", source="billing")
    build.event("webhook.rejected", T0 - 2 * m, source="billing", status="failed")
    rules = [SHIPPED["api-errors-erp"], SHIPPED["webhook-rejections-billing"]]
    engine = SlaEngine(lineage, rules, clock=clock)
    erp, inbound = await engine.tick()
    assert (erp.good, erp.bad, erp.scope) == (5, 3, "erp")
    assert (inbound.good, inbound.bad) == (3, 1)


async def test_backlog_is_sampled_each_tick(lineage, build: Builder, clock):
    rule = Rule.model_validate(
        rule_doc(
            id="backlog",
            objective="99%",
            indicator={
                "kind": "backlog",
                "max_open": 2,
                "max_age": "15m",
                "waiting_kinds": ["entitlement.activated"],
            },
        )
    )
    build.transaction("t1", T0 - 6 * m, T0 - 5 * m)
    build.transaction("t2", T0 - 40 * m, T0 - 30 * m, amount=700, customer="001B")
    build.transaction(
        "t3", T0 - 3 * 24 * 60 * m, T0 - 2 * 24 * 60 * m, last_kind="entitlement.activated"
    )  # fmt: skip  (waiting for payment)
    build.transaction("t4", T0 - 50 * m, T0 - 45 * m, state="completed")
    engine, status = await _one(lineage, rule, clock)
    assert status.details == {"open": 2.0, "oldest_age_s": 1800.0}
    assert (status.good, status.bad) == (0, 1)
    [alert] = engine.alerts()
    assert (alert.value_at_risk, alert.customers_affected) == (Decimal("700.00"), 1)

    lineage.con.execute("UPDATE transactions SET state = 'completed' WHERE correlation_id = 't2'")
    clock.advance(minutes=1)
    [status] = await engine.tick()
    assert status.details["open"] == 1.0
    assert (status.good, status.bad) == (1, 1)

    # A restarted engine recovers the samples it stored.
    clock.advance(minutes=1)
    [status] = await SlaEngine(lineage, [rule], clock=clock).tick()
    assert (status.good, status.bad) == (2, 1)


async def test_milestone_rules_sharing_a_start_share_one_pass(lineage, build: Builder, clock):
    for i in range(40):
        won = T0 - (200 - 4 * i) * m
        build.event("opportunity.closed_won", won, corr=f"t{i}", source="crm")
        if i % 3:
            build.event("order.created", won + (i % 8) * m, corr=f"t{i}", target="erp")
        if i % 5:
            build.event("entitlement.activated", won + (i % 90) * m, corr=f"t{i}")
    pair = [SHIPPED["closed-won-to-erp-order"], SHIPPED["entitlement-completeness"]]
    together = await SlaEngine(lineage, pair, clock=clock).tick()
    apart = [(await _one(lineage, rule, clock))[1] for rule in pair]
    assert [(s.good, s.bad) for s in together] == [(s.good, s.bad) for s in apart]
    assert together[0].good > 0 and together[0].bad > 0 and together[1].bad > 0
