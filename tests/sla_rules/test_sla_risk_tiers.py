"""Alerts carry a risk tier and the list ranks by it first, then by value at risk: a failed
invoice posting (its amount at risk now) outranks a failed catalog sync (nothing at risk
until an order uses the product), whatever the sync's events carry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from _sla_helpers import T0, TOKENS, Builder, FakeClock, api_app

from sla_rules import RiskTier, SlaEngine, load_rules

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {rule.id: rule for rule in load_rules()}
CATALOG = {r.id: r for r in load_rules([ROOT / "adapters" / "catalog" / "catalog.yaml"])}
m = timedelta(minutes=1)


def _seed(build: Builder) -> None:
    # Invoice postings: every other one dead-lettered, 100 each (1,500 at risk).
    for i in range(30):
        build.event("invoice.posted", T0 - (30 - i) * m, corr=f"inv{i}", step="erp.invoice.post",
                    target="erp", status="ok" if i % 2 else "dead_lettered", amount=100,
                    customer=f"c{i % 3}")  # fmt: skip
    # Catalog syncs failing just as often; their events carry a large amount on purpose,
    # so value alone (or the old impact score) would rank them first.
    for i in range(30):
        build.event("product.synced.crm", T0 - (30 - i) * m, corr=f"prod{i}",
                    step="crm.product.sync", target="crm",
                    status="ok" if i % 2 else "dead_lettered", amount=1_000_000,
                    customer=f"c{i % 5}")  # fmt: skip
    # More failed postings of the same rule, 1 each: the alert sums them once per item.
    for i in range(30):
        build.event("invoice.posted", T0 - (30 - i) * m, corr=f"small{i}",
                    step="erp.invoice.post", target="erp",
                    status="ok" if i % 2 else "dead_lettered", amount=1, customer="c9")  # fmt: skip


async def test_the_catalog_rules_are_latent_and_the_invoice_rule_is_at_risk():
    assert CATALOG["catalog-sync-success"].risk is RiskTier.LATENT
    assert CATALOG["catalog-billing-sync-success"].risk is RiskTier.LATENT
    assert SHIPPED["invoice-sync-success"].risk is RiskTier.AT_RISK


async def test_alerts_rank_by_risk_tier_then_value(lineage, build: Builder, clock: FakeClock):
    _seed(build)
    rules = [CATALOG["catalog-sync-success"], SHIPPED["invoice-sync-success"]]
    engine = SlaEngine(lineage, rules, clock=clock)
    await engine.tick()
    ranked = engine.alerts()
    assert [(a.rule_id, a.risk_tier) for a in ranked] == [
        ("invoice-sync-success", "at_risk"),
        ("catalog-sync-success", "latent"),
    ]
    # The latent alert holds more value and a higher score, and still ranks second.
    assert ranked[1].value_at_risk > ranked[0].value_at_risk
    assert ranked[1].score > ranked[0].score

    transport = httpx.ASGITransport(app=api_app(engine))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://sla",
        headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
    ) as client:
        alerts = (await client.get("/api/v1/alerts")).json()["alerts"]
    assert [(a["rule_id"], a["risk_tier"]) for a in alerts] == [
        ("invoice-sync-success", "at_risk"),
        ("catalog-sync-success", "latent"),
    ]
    assert alerts[0]["value_at_risk"] == float(Decimal(15 * 100) + Decimal(15))


async def test_a_persisted_alert_keeps_its_risk_tier(lineage, build: Builder, clock: FakeClock):
    _seed(build)
    engine = SlaEngine(lineage, [CATALOG["catalog-sync-success"]], clock=clock)
    await engine.tick()
    again = SlaEngine(lineage, [CATALOG["catalog-sync-success"]], clock=clock)
    await again.tick()
    assert [a.risk_tier for a in again.alerts()] == ["latent"]
