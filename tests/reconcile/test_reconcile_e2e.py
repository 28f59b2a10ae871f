"""Reconciliation against the real systems: Tryton, localstripe and the sandboxes,
through the whole runtime. A clean landscape reconciles clean; faults no event ever
reported (a sale keyed into the ERP twice, one keyed with no deal, a subscription
cancelled in billing, a paid-invoice webhook that never arrived) are each found with
their class and value; repairing them makes the next run clean."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from adapters.erp import TrytonAdapter
from adapters.sandbox import free_port
from adapters.sandbox._landscape import Landscape, LandscapeEndpoints
from adapters.sandbox._silent import SilentFaults
from adapters.sandbox._traffic import TrafficGenerator
from adapters.sandbox.plugin import with_landscape
from collector import Role, load_settings
from collector.host import Interlock
from tracing import correlation_id_for

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

OPERATOR = {"Authorization": "Bearer recon-operator"}


class Stack:
    def __init__(self, landscape: Landscape, ep: LandscapeEndpoints, traffic: TrafficGenerator,
                 api: httpx.AsyncClient, erp: TrytonAdapter) -> None:  # fmt: skip
        self.landscape, self.ep, self.traffic, self.api, self.erp = (
            landscape, ep, traffic, api, erp
        )  # fmt: skip

    async def settled(self, opp_id: str, *kinds: str, within: float = 90.0) -> dict[str, Any]:
        cid = correlation_id_for("crm", "opportunity", opp_id)
        deadline = time.monotonic() + within
        tx: dict[str, Any] = {}
        while time.monotonic() < deadline:
            r = await self.api.get(f"/api/v1/transactions/{cid}")
            tx = r.json() if r.status_code == 200 else {}
            done = {e["kind"] for e in tx.get("events", []) if e["status"] == "ok"}
            if set(kinds) <= done:
                return tx
            await asyncio.sleep(0.25)
        raise AssertionError(f"{opp_id} never reached {kinds}: {tx.get('events')}")

    async def reconcile(self) -> dict[str, Any]:
        started = await self.api.post("/api/v1/reconciliations", json={"period": "day"},
                                      headers=OPERATOR)  # fmt: skip
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = (await self.api.get(f"/api/v1/reconciliations/{run_id}")).json()
            if run["status"] != "running":
                assert run["status"] == "done", run
                return run
            await asyncio.sleep(0.2)
        raise AssertionError(f"reconciliation {run_id} still running")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("reconcile")
    api_port = free_port()
    landscape = Landscape(workdir, webhook_url=f"http://127.0.0.1:{api_port}/webhooks/stripe")
    ep = await asyncio.to_thread(landscape.start)
    settings = with_landscape(
        load_settings(
            env={
                "INTERLOCK_LINEAGE_PATH": str(workdir / "lineage.duckdb"),
                "INTERLOCK_LINEAGE_FLUSH_INTERVAL": "0.05",
                "INTERLOCK_RETRY_MAX_ATTEMPTS": "3",
                "INTERLOCK_RETRY_BASE_DELAY": "0.05",
                "INTERLOCK_RETRY_MAX_DELAY": "0.2",
                "INTERLOCK_CRM_POLL_INTERVAL": "0.2",
                "INTERLOCK_DEMO_ENABLED": "false",
                # Runs here are on demand; a transaction is in flight for 0 minutes.
                "INTERLOCK_RECONCILE_SCHEDULE": "",
                "INTERLOCK_RECONCILE_SETTLE_MINUTES": "0",
            }
        ),
        ep,
    )
    runtime = Interlock(settings, demo=False, api_port=api_port)
    info = await runtime.start()
    runtime.app.state.tokens.add("recon", Role.OPERATOR, "recon-operator")
    traffic = TrafficGenerator(ep.crm_url, ep.crm_token, ca_file=ep.crm_ca_file, faults=False,
                               seed=11)  # fmt: skip
    api = httpx.AsyncClient(base_url=info.api_url, timeout=10, headers=OPERATOR)
    erp = TrytonAdapter(ep.direct["erp"], ep.erp_database, ep.erp_user, ep.erp_password)
    try:
        yield Stack(landscape, ep, traffic, api, erp)
    finally:
        await erp.aclose()
        await api.aclose()
        await traffic.stop()
        await runtime.stop()
        await asyncio.to_thread(landscape.stop)


async def _hand_keyed_sale(erp: TrytonAdapter, reference: str, like: int) -> int:
    """A sale a clerk keys into the ERP: a copy of sale ``like`` (its party and lines)."""
    values = {"reference": reference, "sale_date": date.today()}
    (copy,) = await erp._rpc.call("model.sale.sale.copy", [like], values)
    return int(copy)


async def test_faults_no_event_reported_are_found_and_repairs_clear_them(stack: Stack) -> None:
    deals = [await stack.traffic.create_deal(close="won") for _ in range(3)]
    for opp in deals:
        await stack.settled(opp, "entitlement.activated", "invoice.posted")
    clean = await stack.reconcile()
    assert clean["discrepancies"] == 0, clean["items"]
    assert clean["counts"]["deals"] >= 3 and clean["counts"]["paid_invoices"] >= 3

    first, second, third = deals
    sale = await stack.erp.find_sale(first)
    assert sale is not None
    twice = await _hand_keyed_sale(stack.erp, first, sale.id)
    orphan = await _hand_keyed_sale(stack.erp, "", sale.id)
    subs = await stack.api.get(
        f"/api/v1/transactions/{correlation_id_for('crm', 'opportunity', second)}"
    )
    sub_id = next(e["entity_id"] for e in subs.json()["events"]
                  if e["kind"] == "subscription.created")  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.ep.direct["billing"],
                                 auth=(stack.ep.billing_api_key, "")) as stripe:  # fmt: skip
        assert (await stripe.delete(f"/v1/subscriptions/{sub_id}")).status_code == 200
    # A paid-invoice webhook that never reaches Interlock.
    assert stack.landscape.webhook_proxy is not None
    stack.landscape.webhook_proxy.set(down=True)
    try:
        dropped = await stack.traffic.create_deal(close="won")
        await stack.settled(dropped, "entitlement.activated")
        await asyncio.sleep(1.0)
    finally:
        stack.landscape.webhook_proxy.clear()

    run = await stack.reconcile()
    found = {(d["kind"], d["system"], d["check"]): d for d in run["items"]}
    dup = found[("duplicate", "erp", "deal_to_erp_sale")]
    assert dup["key"] == f"{first}#{twice}" and Decimal(dup["value_at_risk"]) == sale.total
    assert dup["seen_by_interlock"] is True
    lone = found[("orphan", "erp", "deal_to_erp_sale")]
    assert lone["key"] == f"-#{orphan}" and lone["seen_by_interlock"] is False
    cancelled = found[("state_mismatch", "billing", "deal_to_subscription")]
    assert cancelled["key"] == second and cancelled["found"] == "canceled"
    missing = found[("missing", "erp", "paid_invoice_to_erp_invoice")]
    assert missing["correlation_id"] == correlation_id_for("crm", "opportunity", dropped)
    assert Decimal(missing["value_at_risk"]) > 0
    assert third not in {d["key"] for d in run["items"]}
    assert Decimal(run["value_at_risk"]["USD"]) >= Decimal(dup["value_at_risk"])

    assert missing["repair"] == "resync" and missing["seen_by_interlock"] is False

    # Repairs. The clerk's two sales are cancelled in the ERP; the cancelled
    # subscription is explained (a customer's cancellation, not an error); the invoice
    # whose webhook was lost is re-read from billing, and its step posts it.
    await stack.erp._rpc.call("model.sale.sale.cancel", [twice, orphan], transition=True)
    base = f"/api/v1/reconciliations/{run['run_id']}/discrepancies"
    no_reason = await stack.api.post(f"{base}/{cancelled['discrepancy_id']}/explain", json={})
    assert no_reason.status_code == 422
    explained = await stack.api.post(
        f"{base}/{cancelled['discrepancy_id']}/explain",
        json={"reason": "customer cancelled in billing; CRM to close the deal"},
    )
    assert explained.status_code == 200, explained.text
    assert explained.json()["explained"]["by"] == "recon"
    not_resyncable = await stack.api.post(f"{base}/{cancelled['discrepancy_id']}/resync")
    assert not_resyncable.status_code == 409
    resynced = await stack.api.post(f"{base}/{missing['discrepancy_id']}/resync")
    assert resynced.status_code == 200 and resynced.json()["events"] >= 1, resynced.text
    await stack.settled(dropped, "invoice.posted")

    after = await stack.reconcile()
    assert after["discrepancies"] == 0, after["items"]
    assert after["explained"] == 1 and after["value_at_risk"] == {}
    audit = (await stack.api.get("/api/v1/audit", params={"limit": 50})).json()["items"]
    actions = [e["action"] for e in audit]
    assert {"reconciliation.run", "reconciliation.explain", "reconciliation.resync"} <= set(actions)
    listing = (await stack.api.get("/api/v1/reconciliations")).json()
    assert listing["total"] == 3 and listing["items"][0]["run_id"] == after["run_id"]


async def test_the_demos_silent_faults_are_each_found_by_reconciliation(stack: Stack) -> None:
    deals = [await stack.traffic.create_deal(close="won") for _ in range(2)]
    for opp in deals:
        await stack.settled(opp, "entitlement.activated", "invoice.posted")
    silent = SilentFaults(
        erp=(stack.ep.direct["erp"], stack.ep.erp_database, stack.ep.erp_user,
             stack.ep.erp_password),
        billing_url=stack.ep.direct["billing"],
        billing_key=stack.ep.billing_api_key,
        webhooks=stack.landscape.webhook_proxy,
        every=0.05,
        webhook_outage=0.5,
    )  # fmt: skip
    await silent.start()
    try:
        for _ in range(300):
            if len(silent.done) >= 4:
                break
            await asyncio.sleep(0.1)
    finally:
        await silent.stop()
    assert len(silent.done) >= 4, silent.done
    run = await stack.reconcile()
    kinds = {(d["kind"], d["system"]) for d in run["items"] if not d["explained"]}
    assert {("duplicate", "erp"), ("orphan", "erp"), ("state_mismatch", "billing")} <= kinds
