"""Re-sync of a closed-won deal Interlock never saw: the deal is read from the CRM and
its trigger held in the lineage, marked as from reconciliation; quote-to-cash starts
only through replay's guards (dry run, four eyes for the money step, audit)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from _hosts import SeedLineage, reading_plugins, reading_settings, token_store

from adapters._canonical import Customer, OrderLine, SalesOrder
from adapters.reconcile import Holdings, Period
from adapters.reconcile.plugin import ReconcilePlugin
from collector import Role
from collector.host import Interlock
from collector.process import free_port
from tracing import correlation_id_for

from .test_compare import whole

pytestmark = pytest.mark.asyncio(loop_scope="module")

REF = "006NEVERSEEN01"
OPERATOR = {"Authorization": "Bearer op-token"}
APPROVER = {"Authorization": "Bearer ap-token"}
CID = correlation_id_for("crm", "opportunity", REF)


class Crm:
    """The CRM's side of a re-sync: the won deal as a canonical order."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    async def load_order(self, opportunity_id: str) -> SalesOrder:
        self.reads.append(opportunity_id)
        return SalesOrder(
            order_ref=opportunity_id,
            customer=Customer(customer_id=f"ACC-{opportunity_id}", name="Acme Corp"),
            currency="USD",
            lines=[OrderLine(sku="SKU-1", quantity=Decimal(2), unit_price=Decimal("500.00"))],
        )


async def read(period: Period) -> Holdings:
    # The CRM holds the won deal; no other system holds anything of it.
    h = whole(REF)
    h.sales, h.subscriptions, h.entitlements = [], [], {}
    return h


class Stack:
    def __init__(self, api: httpx.AsyncClient, crm: Crm) -> None:
        self.api, self.crm = api, crm

    async def events(self, *, within: float = 10.0, until: Any = None) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            r = await self.api.get(f"/api/v1/transactions/{CID}")
            events = r.json()["events"] if r.status_code == 200 else []
            if events and (until is None or until(events)):
                return events
            await asyncio.sleep(0.1)
        raise AssertionError(f"{CID}: {events}")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    work: Path = tmp_path_factory.mktemp("resync")
    port = free_port()
    crm = Crm()
    s = reading_settings(port, tokens_file=work / "tokens.json")
    s = s.model_copy(update={"lineage": s.lineage.model_copy(update={"flush_interval": 0.05})})
    runtime = Interlock(
        s,
        [
            SeedLineage([]),
            *reading_plugins(replay={"outcome_timeout": 1.0}, sla=False),
            ReconcilePlugin(read=read, deals=crm, scheduled=False),
        ],
        demo=False,
        api_port=port,
        tokens=token_store(
            {"op-token": ("olivia", Role.OPERATOR), "ap-token": ("amir", Role.APPROVER)}
        ),
    )
    info = await runtime.start()
    api = httpx.AsyncClient(base_url=info.api_url, timeout=10, headers=OPERATOR)
    try:
        yield Stack(api, crm)
    finally:
        await api.aclose()
        await runtime.stop()


async def _run(api: httpx.AsyncClient) -> dict[str, Any]:
    started = await api.post("/api/v1/reconciliations", json={"period": "day"})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    for _ in range(100):
        run = (await api.get(f"/api/v1/reconciliations/{run_id}")).json()
        if run["status"] != "running":
            assert run["status"] == "done", run
            return dict(run)
        await asyncio.sleep(0.1)
    raise AssertionError(f"reconciliation {run_id} still running")


async def test_a_deal_interlock_never_saw_starts_quote_to_cash_through_the_replay_guards(
    stack: Stack,
) -> None:
    api = stack.api
    run = await _run(api)
    missing = next(
        i for i in run["items"] if i["check"] == "deal_to_erp_sale" and i["kind"] == "missing"
    )
    assert missing["repair"] == "resync" and missing["seen_by_interlock"] is False
    url = f"/api/v1/reconciliations/{run['run_id']}/discrepancies/{missing['discrepancy_id']}"

    # A viewer cannot; a dry run reads the CRM and publishes nothing.
    assert (
        await api.post(f"{url}/resync", headers={"Authorization": "Bearer x"})
    ).status_code == 401
    dry = await api.post(f"{url}/resync", params={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["events"] == 0
    assert dry.json()["money"] is True and dry.json()["order"]["amount"] == "1000.00"
    assert (await api.get(f"/api/v1/transactions/{CID}")).status_code == 404

    done = await api.post(f"{url}/resync")
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["events"] == 2 and stack.crm.reads == [REF, REF]
    events = await stack.events(until=lambda es: len(es) == 2)
    trigger = next(e for e in events if e["kind"] == "opportunity.closed_won")
    assert trigger["payload"]["origin"] == "reconciliation"
    assert trigger["payload"]["reconciliation_run"] == run["run_id"]
    assert trigger["status"] == "failed"  # held: quote-to-cash did not react to it
    assert trigger["source"] == "crm" and trigger["amount"] == "1000.00"

    # A second re-sync of the same discrepancy is refused: the lineage holds it now.
    assert (await api.post(f"{url}/resync")).status_code == 409

    # Starting the flow is a replay of the held dead letter: dry run, four eyes, audit.
    body = {"selection": answer["replay_selection"], "reason": "deal never received"}
    plan = await api.post("/api/v1/replays", json=body)
    assert plan.status_code == 200, plan.text
    assert plan.json()["to_deliver"] == 1 and plan.json()["needs_approval"] is True
    (item,) = plan.json()["items"]
    assert item["input_event_id"] == trigger["event_id"] and item["money"] is True
    requested = await api.post("/api/v1/replays", json={**body, "dry_run": False})
    assert requested.status_code == 202, requested.text
    replay_id = requested.json()["replay_id"]
    assert requested.json()["state"] == "pending_approval"
    own = await api.post(f"/api/v1/replays/{replay_id}/approve", json={})
    assert own.status_code == 403  # the operator cannot approve, nor a requester their own
    approved = await api.post(f"/api/v1/replays/{replay_id}/approve", json={}, headers=APPROVER)
    assert approved.status_code == 200, approved.text

    # Re-delivered: the CRM's trigger, replayed, is what quote-to-cash acts on.
    events = await stack.events(
        until=lambda es: any(
            e["kind"] == "opportunity.closed_won" and e["status"] == "replayed" for e in es
        )
    )
    replayed = next(e for e in events if e["status"] == "replayed")
    assert replayed["payload"]["order_ref"] == REF
    assert replayed["payload"]["origin"] == "reconciliation"

    audit = (await api.get("/api/v1/audit", params={"limit": 100})).json()["items"]
    actions = [(a["action"], a["outcome"]) for a in audit]
    assert ("reconciliation.resync", "dry run") in actions
    assert ("reconciliation.resync", "resynced") in actions
    assert any(a == "replay.approve" for a, _ in actions)
