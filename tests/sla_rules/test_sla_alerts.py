"""Alert ranking and lifecycle, and the engine's incremental evaluation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from _sla_helpers import T0, Builder, FakeClock

from sla_rules import (
    AlertNotFound,
    AlertStateError,
    Rule,
    SlaEngine,
    impact_score,
    load_rules,
)
from sla_rules._model import ImpactTier

SHIPPED = {rule.id: rule for rule in load_rules()}
m = timedelta(minutes=1)
INVOICE = SHIPPED["invoice-sync-success"]  # 99.5%: 14.4x burn = 7.2% bad
# The same SLO paging on the fast burn only, so a lifecycle plays out in minutes.
FAST_ONLY = Rule.model_validate(
    {
        **INVOICE.model_dump(),
        "alerting": {
            "page_slow": {"long": "6h", "short": "30m", "burn_rate": 1000},
            "ticket": {"long": "3d", "short": "6h", "burn_rate": 1000},
        },
    }
)


def posting(build: Builder, at, corr: str, ok: bool, amount: float = 1000.0, customer="001A"):
    status = "ok" if ok else "dead_lettered"
    build.event("invoice.posted", at, corr=corr, step="erp.invoice.post", target="erp",
                status=status, amount=amount, customer=customer)  # fmt: skip


def traffic(build: Builder, start, minutes: int, bad_every: int | None, prefix: str):
    """One posting a minute; every ``bad_every``-th dead-lettered."""
    for i in range(minutes):
        bad = bad_every is not None and i % bad_every == 0
        posting(build, start + i * m, f"{prefix}{i}", not bad, customer=f"cust{i % 7}")


def test_score_orders_by_money_then_reach_and_tier():
    big = impact_score(ImpactTier.COMPLIANCE.weight, Decimal(1_000_000), 3, "ticket")
    small = impact_score(ImpactTier.REVENUE.weight, Decimal(1_000), 3, "ticket")
    assert big > small
    assert impact_score(1.0, Decimal(100), 50, "page") > impact_score(1.0, Decimal(100), 1, "page")
    assert impact_score(1.0, Decimal(100), 5, "page") > impact_score(1.0, Decimal(100), 5, "ticket")
    assert impact_score(1.0, Decimal(0), 0, "ticket") == 1.0


async def test_alerts_sorted_by_impact_not_time(lineage, build: Builder, clock: FakeClock):
    # The newest alert (billing API) holds little money; the older one holds a lot.
    for i in range(30):
        posting(build, T0 - (30 - i) * m, f"big{i}", i % 2 == 0, amount=50_000)
    for i in range(30):
        build.event("subscription.created", T0 - (20 - i / 2) * m, corr=f"s{i}",
                    target="billing", status="retrying" if i % 2 else "ok", amount=10)  # fmt: skip
    engine = SlaEngine(lineage, [SHIPPED["api-errors-billing"], INVOICE], clock=clock)
    await engine.tick()
    ranked = engine.alerts()
    assert [a.rule_id for a in ranked] == ["invoice-sync-success", "api-errors-billing"]
    assert ranked[0].value_at_risk == Decimal(15 * 50_000)
    assert ranked[0].score > ranked[1].score
    assert ranked[0].impact_tier == "cash_collection"


async def test_lifecycle_dedupe_ack_resolve_and_flap_guard(lineage, build, clock: FakeClock):
    traffic(build, T0 - 60 * m, 60, 2, "a")  # 50% bad for an hour: fast page
    engine = SlaEngine(lineage, [FAST_ONLY], clock=clock)
    [status] = await engine.tick()
    assert status.firing == "page" and status.condition == "page_fast"
    [alert] = engine.alerts()
    assert alert.state == "firing"

    # Still burning: the same alert, not a second one.
    traffic(build, T0, 3, 2, "b")
    clock.advance(minutes=3)
    await engine.tick()
    assert [a.alert_id for a in engine.alerts()] == [alert.alert_id]

    acked = await engine.acknowledge(alert.alert_id, "olivia", "looking at the ERP")
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "olivia")
    with pytest.raises(AlertStateError):
        await engine.acknowledge(alert.alert_id, "olivia", None)
    with pytest.raises(AlertNotFound):
        await engine.acknowledge("nope", "olivia", None)

    # Clean traffic: the 5m window clears, but the alert waits out resolve_after (10m).
    traffic(build, T0 + 3 * m, 40, None, "c")
    clock.advance(minutes=6)
    [status] = await engine.tick()
    assert status.firing is None
    assert engine.alerts()[0].state == "acknowledged"
    clock.advance(minutes=10)
    await engine.tick()
    assert engine.alerts() == []
    resolved = engine.alerts(include_resolved=True)[0]
    assert resolved.state == "resolved" and resolved.resolved_at == clock.now

    # It fires again within reopen_within: the same alert reopens, counted as a flap.
    traffic(build, T0 + 20 * m, 10, 1, "d")
    clock.advance(minutes=5)
    await engine.tick()
    [again] = engine.alerts()
    assert again.alert_id == alert.alert_id and again.flaps == 1 and again.state == "firing"

    changes = await engine.alert_changes(alert.alert_id)
    assert [(c["from"], c["to"], c["by"]) for c in changes] == [
        (None, "firing", "sla-engine"),
        ("firing", "acknowledged", "olivia"),
        ("acknowledged", "resolved", "sla-engine"),
        ("resolved", "firing", "sla-engine"),
    ]
    assert changes[1]["note"] == "looking at the ERP"

    # A restarted engine reloads the open alert from its table.
    reloaded = SlaEngine(lineage, [FAST_ONLY], clock=clock)
    await reloaded.tick()
    assert [a.alert_id for a in reloaded.alerts()] == [alert.alert_id]


async def test_blip_does_not_page(lineage, build, clock: FakeClock):
    traffic(build, T0 - 24 * 60 * m, 24 * 60 - 3, None, "ok")  # a quiet day, then
    for i in range(3):  # one bad minute among 3 postings a minute
        posting(build, T0 - 3 * m, f"blip{i}", False)
    engine = SlaEngine(lineage, [INVOICE], clock=clock)
    [status] = await engine.tick()
    assert status.burn_rates["5m"] > 14.4  # the short window sees it...
    assert status.burn_rates["1h"] < 14.4  # ...but the hour does not
    assert status.burn_rates["30m"] > 6 and status.burn_rates["6h"] < 6  # nor six hours
    assert status.firing is None and engine.alerts() == []


async def test_incremental_matches_cold_and_sees_late_events(lineage, build, clock: FakeClock):
    traffic(build, T0 - 120 * m, 120, 10, "x")
    engine = SlaEngine(lineage, [INVOICE, SHIPPED["closed-won-to-erp-order"]], clock=clock)
    await engine.tick()
    for step in range(5):
        traffic(build, clock.now, 2, 3, f"y{step}-")
        clock.advance(minutes=2)
        await engine.tick()
    # An event that happened an hour ago arrives only now (a backfill or a slow consumer).
    build.event("invoice.posted", T0 - 60 * m, corr="late", step="erp.invoice.post",
                status="dead_lettered", ingested_at=clock.now)  # fmt: skip
    clock.advance(seconds=20)
    warm = await engine.tick()
    cold = await SlaEngine(lineage, engine.rules, clock=clock).tick()
    assert [(s.good, s.bad, s.burn_rates) for s in warm] == [
        (s.good, s.bad, s.burn_rates) for s in cold
    ]
    assert warm[0].bad == 12 + 5 + 1
    assert engine.counts["invoice-sync-success"] == [warm[0].good, warm[0].bad]


async def test_start_stop_owns_its_task(lineage, build, clock: FakeClock):
    traffic(build, T0 - 10 * m, 10, None, "s")
    engine = SlaEngine(lineage, [INVOICE], clock=clock, interval=0.01)
    await engine.start()
    for _ in range(200):
        if engine.status():
            break
        await asyncio.sleep(0.01)
    assert engine.status()[0].good == 10
    await engine.stop()
    await engine.stop()  # safe twice
    history = await engine.history(INVOICE.id)
    assert history and history[0]["good"] == 10
    with pytest.raises(ValueError):
        SlaEngine(lineage, [INVOICE], interval=0)
