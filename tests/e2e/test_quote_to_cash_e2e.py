"""Quote-to-cash end to end, against the real ERP (Tryton), the real billing
emulator (localstripe), the CRM and support sandboxes, through the whole runtime:
CRM change feed → flow → ERP/billing/support → signed webhook → ERP invoice,
every step in the DuckDB lineage, read back through the control API. The module
runs once per support desk (``[support] desk``: Zendesk, then ServiceNow)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from adapters.billing import BillingAdapter
from adapters.erp import TrytonAdapter
from adapters.sandbox._landscape import Landscape, LandscapeEndpoints
from adapters.sandbox._traffic import TrafficGenerator
from adapters.sandbox.plugin import with_landscape
from collector import Role, load_settings
from collector.host import Interlock
from tracing import correlation_id_for

from .conftest import SHARED_LANDSCAPE_ENV, SharedLandscape

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


class Stack:
    def __init__(
        self,
        runtime: Interlock,
        landscape: Landscape,
        ep: LandscapeEndpoints,
        traffic: TrafficGenerator,
        api: httpx.AsyncClient,
        desk: str,
    ) -> None:
        self.runtime, self.landscape, self.ep, self.traffic, self.api = (
            runtime,
            landscape,
            ep,
            traffic,
            api,
        )
        self.desk = desk

    def desk_cases(self, key: str) -> list[dict[str, Any]]:
        """The cases or tickets the chosen desk holds under idempotency ``key``."""
        if self.desk == "zendesk":
            r = httpx.get(
                f"{self.ep.support_url}/api/v2/tickets.json",
                params={"external_id": key},
                auth=(f"{self.ep.support_email}/token", self.ep.support_token),
            )
            return list(r.json()["tickets"])
        r = httpx.get(
            f"{self.ep.servicenow_url}/api/now/table/sn_customerservice_case",
            params={"sysparm_query": f"correlation_id={key}"},
            auth=(self.ep.servicenow_username, self.ep.servicenow_password),
            verify=ssl.create_default_context(cafile=self.ep.servicenow_ca_file),
        )
        return list(r.json()["result"])

    async def transaction(self, opp_id: str) -> dict[str, Any] | None:
        cid = correlation_id_for("crm", "opportunity", opp_id)
        r = await self.api.get(f"/api/v1/transactions/{cid}")
        return r.json() if r.status_code == 200 else None

    async def wait_for(self, opp_id: str, predicate, within: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = await self.transaction(opp_id)
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.25)
        kinds = [(e["kind"], e["status"]) for e in (last or {}).get("events", [])]
        raise AssertionError(f"transaction of {opp_id} never got there; last events: {kinds}")


def _has(kind: str, status: str = "ok"):
    return lambda tx: any(e["kind"] == kind and e["status"] == status for e in tx["events"])


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["zendesk", "servicenow"])
async def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    shared_landscape: SharedLandscape,
) -> AsyncIterator[Stack]:
    """The runtime for one desk, on the session's shared landscape (see conftest.py)."""
    desk: str = request.param
    workdir: Path = tmp_path_factory.mktemp("runtime")
    landscape, ep, api_port = (
        shared_landscape.landscape,
        shared_landscape.ep,
        shared_landscape.api_port,
    )
    settings = with_landscape(
        load_settings(
            env={
                "INTERLOCK_LINEAGE_PATH": str(workdir / "lineage.duckdb"),
                "INTERLOCK_LINEAGE_FLUSH_INTERVAL": "0.05",
                "INTERLOCK_RETRY_MAX_ATTEMPTS": "4",
                "INTERLOCK_RETRY_BASE_DELAY": "0.05",
                "INTERLOCK_RETRY_MAX_DELAY": "0.2",
                "INTERLOCK_CRM_POLL_INTERVAL": "0.2",
                "INTERLOCK_DEMO_ENABLED": "false",
                "INTERLOCK_SUPPORT_DESK": desk,
                **SHARED_LANDSCAPE_ENV,
            }
        ),
        ep,
    )
    runtime = Interlock(settings, demo=False, api_port=api_port)
    info = await runtime.start()
    traffic = TrafficGenerator(
        ep.crm_url, ep.crm_token, ca_file=ep.crm_ca_file, faults=False, seed=7
    )
    runtime.app.state.tokens.add("e2e", Role.VIEWER, "e2e-viewer-token")
    # Reads need a token outside the demo: the runtime passes api.require_auth_for_reads.
    async with httpx.AsyncClient(base_url=info.api_url, timeout=10) as anonymous_client:
        anonymous = await anonymous_client.get("/api/v1/stats")
    assert anonymous.status_code == 401, anonymous.text
    auth = {"Authorization": "Bearer e2e-viewer-token"}
    api = httpx.AsyncClient(base_url=info.api_url, timeout=10, headers=auth)
    try:
        yield Stack(runtime, landscape, ep, traffic, api, desk)
    finally:
        await api.aclose()
        await traffic.stop()
        await runtime.stop()
        shared_landscape.clear_faults()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def erp(stack: Stack) -> AsyncIterator[TrytonAdapter]:
    async with TrytonAdapter(
        stack.ep.direct["erp"], stack.ep.erp_database, stack.ep.erp_user, stack.ep.erp_password
    ) as adapter:
        yield adapter


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def billing(stack: Stack) -> AsyncIterator[BillingAdapter]:
    async with BillingAdapter(stack.ep.direct["billing"], stack.ep.billing_api_key) as adapter:
        yield adapter


async def test_closed_won_becomes_order_subscription_entitlement_and_posted_invoice(
    stack: Stack, erp: TrytonAdapter, billing: BillingAdapter
) -> None:
    opp = await stack.traffic.create_deal(close="won")
    # The paid-invoice webhook can overtake the support entitlement step (billing pays the
    # first invoice the moment the subscription exists): the transaction stays in progress,
    # waiting for that step, until it lands too.
    tx = await stack.wait_for(
        opp, lambda t: _has("invoice.posted")(t) and t["state"] == "completed"
    )

    # The ERP holds exactly one confirmed sale with the opportunity as reference,
    # raising no invoice of its own (billing owns invoicing) ...
    sale = await erp.find_sale(opp)
    assert sale is not None and sale.state in {"confirmed", "processing"}
    assert sale.invoice_method == "manual"
    # ... and the invoice billing raised, posted in its receivables.
    posted = next(e for e in tx["events"] if e["kind"] == "invoice.posted")
    erp_invoice = await erp.find_invoice(posted["entity_id"])
    assert erp_invoice is not None and erp_invoice.state in {"posted", "paid"}
    assert Decimal(posted["amount"]) == sale.total

    # The ERP state is on the opportunity, written by an adapter signed in as the
    # connected app (JWT bearer), not with the traffic's static session.
    tx = await stack.wait_for(opp, _has("order.status.published"))
    published = [e for e in tx["events"] if e["kind"] == "order.status.published"]
    assert {e["step"] for e in published} == {"crm.order.status"}
    verify = ssl.create_default_context(cafile=stack.ep.crm_ca_file)
    async with httpx.AsyncClient(base_url=stack.ep.crm_url, verify=verify) as crm:
        record = (
            await crm.get(
                f"/services/data/v60.0/sobjects/Opportunity/{opp}",
                headers={"Authorization": f"Bearer {stack.ep.crm_token}"},
            )
        ).json()
        stats = (await crm.get("/_sandbox/stats")).json()
    assert record["ERP_Order_Status__c"] in {"confirmed", "processing"}
    assert stats["token_requests"].get("urn:ietf:params:oauth:grant-type:jwt-bearer", 0) >= 1

    # Billing holds the customer's subscription.
    sub_event = next(e for e in tx["events"] if e["kind"] == "subscription.created")
    subscription = await billing.find_subscription(opp, sub_event["payload"]["billing_customer_id"])
    assert subscription is not None and subscription.subscription_id == sub_event["entity_id"]

    # The chosen desk holds one onboarding case, and the step is recorded against it.
    entitled = next(e for e in tx["events"] if e["kind"] == "entitlement.activated")
    assert entitled["target"] == {"zendesk": "support", "servicenow": "servicenow"}[stack.desk]
    cases = await asyncio.to_thread(stack.desk_cases, f"support.entitlement:{opp}")
    assert len(cases) == 1
    case_id = cases[0]["id"] if stack.desk == "zendesk" else cases[0]["sys_id"]
    assert str(case_id) == entitled["entity_id"]
    # ... and the explorer has a lane for that system.
    systems = (await stack.api.get("/api/v1/systems")).json()["systems"]
    assert entitled["target"] in [s["name"] for s in systems]

    # The lineage: one correlation ID, an unbroken causation chain, a trace ID on every step.
    events = [e for e in tx["events"] if e["status"] == "ok"]
    kinds = [e["kind"] for e in events]
    for kind in (
        "opportunity.closed_won",
        "order.created",
        "order.confirmed",
        "subscription.created",
        "entitlement.activated",
        "invoice.paid",
        "invoice.posted",
    ):
        assert kinds.count(kind) == 1, kinds
    by_id = {e["event_id"]: e for e in tx["events"]}
    # Ingress events start a chain: the closed-won deal, and each sale state the ERP
    # poll reports (which the flow then publishes to the CRM).
    roots = {"opportunity.closed_won", "order.state_changed"}
    for event in events:
        assert len(event["trace_id"]) == 32
        hops, node = 0, event
        while node["kind"] not in roots:
            node = by_id[node["causation_id"]]
            hops += 1
            assert hops < 10
    # PII is masked in what was stored.
    raw = json.dumps(tx)
    assert "@" not in raw.replace("***@", "")


async def test_a_second_delivery_still_gives_one_order(stack: Stack, erp: TrytonAdapter) -> None:
    opp = await stack.traffic.create_deal(close="won")
    await stack.wait_for(opp, _has("order.confirmed"))
    await stack.traffic.redeliver(opp)
    tx = await stack.wait_for(opp, _has("opportunity.closed_won", "duplicate"))
    assert [e["kind"] for e in tx["events"] if e["status"] == "ok"].count("order.created") == 1
    sales = await erp._rpc.call("model.sale.sale.search", [[["reference", "=", opp]]])
    assert len(sales) == 1


async def test_a_billing_429_storm_ends_in_success(stack: Stack) -> None:
    assert stack.landscape.billing_proxy is not None
    # The storm lasts until billing has refused the step at least once: a storm of fixed
    # length can end before a slow machine reaches the billing step.
    stack.landscape.billing_proxy.set(rate_limit=1.0, retry_after=1)
    try:
        opp = await stack.traffic.create_deal(close="won")
        await stack.wait_for(opp, _has("subscription.created", "retrying"))
    finally:
        stack.landscape.billing_proxy.clear()
    tx = await stack.wait_for(opp, _has("subscription.created"))
    retries = [
        e
        for e in tx["events"]
        if e["status"] == "retrying" and e["step"] == "billing.subscription.create"
    ]
    assert retries and all(e["error"]["reason"] == "rate_limit" for e in retries)
    assert not [e for e in tx["events"] if e["status"] == "dead_lettered"]


async def test_an_erp_outage_beyond_the_retry_policy_is_a_dead_letter(stack: Stack) -> None:
    assert stack.landscape.erp_proxy is not None
    stack.landscape.erp_proxy.set(down=True)
    try:
        opp = await stack.traffic.create_deal(close="won")
        tx = await stack.wait_for(opp, _has("order.created", "dead_lettered"))
    finally:
        stack.landscape.erp_proxy.clear()
    dead = next(e for e in tx["events"] if e["status"] == "dead_lettered")
    assert dead["error"]["reason"] == "downstream_unavailable"
    assert dead["attempt"] == 4
    assert tx["state"] == "dead_lettered"
    # Named from the CRM's change itself: the order never reached the step that reads the account.
    assert tx["customer_name"] and not tx["customer_name"].startswith("001")
    letters = (await stack.api.get("/api/v1/dead-letters", params={"state": "open"})).json()
    assert dead["event_id"] in {d["event_id"] for d in letters["items"]}


@pytest.mark.parametrize(
    ("fault", "reason"), [("missing_amount", "validation"), ("unknown_product", "mapping")]
)
async def test_a_malformed_opportunity_is_a_dead_letter(
    stack: Stack, fault: str, reason: str
) -> None:
    opp = await stack.traffic.create_deal(malformed=fault, close="won")
    tx = await stack.wait_for(opp, _has("order.created", "dead_lettered"))
    dead = next(e for e in tx["events"] if e["status"] == "dead_lettered")
    assert dead["error"]["reason"] == reason
    assert dead["attempt"] == 1  # bad data is not retried


async def test_a_forged_billing_webhook_is_rejected_and_recorded(stack: Stack) -> None:
    body = json.dumps({"id": "evt_forged", "type": "invoice.paid", "data": {"object": {}}})
    r = await stack.api.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}",
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 400
    r = await stack.api.post("/webhooks/stripe", content=body)
    assert r.status_code == 401
    await asyncio.sleep(0.3)
    stats = (await stack.api.get("/api/v1/stats")).json()
    assert stats["events_by_status"].get("failed", 0) >= 2
    metrics = (await stack.api.get("/metrics")).text
    assert (
        'interlock_webhook_rejected_total{reason="signature_mismatch",system="billing"} 1.0'
        in metrics
    )


async def test_a_duplicated_billing_webhook_still_posts_one_invoice(
    stack: Stack, erp: TrytonAdapter
) -> None:
    assert stack.landscape.webhook_proxy is not None
    stack.landscape.webhook_proxy.set(duplicate=1.0)
    try:
        opp = await stack.traffic.create_deal(close="won")
        tx = await stack.wait_for(opp, _has("invoice.paid", "duplicate"))
        tx = await stack.wait_for(opp, _has("invoice.posted"))
    finally:
        stack.landscape.webhook_proxy.clear()
    ok = [e["kind"] for e in tx["events"] if e["status"] == "ok"]
    assert ok.count("invoice.paid") == 1 and ok.count("invoice.posted") == 1
    posted = next(e for e in tx["events"] if e["kind"] == "invoice.posted")
    invoices = await erp._rpc.call(
        "model.account.invoice.search", [[["reference", "=", posted["entity_id"]]]]
    )
    assert len(invoices) == 1
