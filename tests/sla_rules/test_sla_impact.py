"""What an alert says is at risk: money with its currency, and nothing for duplicates."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from _sla_helpers import T0, Builder

from sla_rules import SlaEngine, load_rules

SHIPPED = {rule.id: rule for rule in load_rules()}
m = timedelta(minutes=1)


async def test_duplicate_deliveries_put_nothing_at_risk(lineage, build: Builder, clock):
    # Half of the inbound deliveries are repeats: the rate burns, but each repeat was
    # dropped, not acted on, so no money and no customer is at risk.
    for i in range(10):
        build.event("opportunity.closed_won", T0 - (20 - i) * m, corr=f"d{i}", source="crm",
                    amount=64_039, customer=f"00D{i}")  # fmt: skip
        build.event("opportunity.closed_won", T0 - (19 - i) * m, corr=f"d{i}", source="crm",
                    status="duplicate", amount=64_039, customer=f"00D{i}")  # fmt: skip
    engine = SlaEngine(lineage, [SHIPPED["duplicate-rate"]], clock=clock)
    [status] = await engine.tick()
    assert status.bad == 10 and status.firing
    [alert] = engine.alerts()
    assert (alert.value_at_risk, alert.customers_affected, alert.currency) == (Decimal(0), 0, None)
    assert alert.items == 10


async def test_value_at_risk_carries_its_currency(lineage, build: Builder, clock):
    for i in range(4):
        build.event("invoice.posted", T0 - (10 - i) * m, corr=f"b{i}", step="erp.invoice.post",
                    target="erp", status="dead_lettered", amount=250)  # fmt: skip
    engine = SlaEngine(lineage, [SHIPPED["invoice-sync-success"]], clock=clock)
    await engine.tick()
    [alert] = engine.alerts()
    assert (alert.value_at_risk, alert.currency) == (Decimal("1000.00"), "USD")
    assert alert.to_dict()["currency"] == "USD"
    assert "USD 1,000.00 at risk" in alert.summary
