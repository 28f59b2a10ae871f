"""The customer master against the real systems, through the whole runtime: Tryton
(with party_relationship), localstripe and the Salesforce and Zendesk sandboxes, each
edited and read back with the vendor's own client (simple-salesforce, stripe, zenpy;
Tryton over its JSON-RPC)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from adapters.erp import TrytonAdapter
from adapters.sandbox import free_port
from adapters.sandbox._landscape import Landscape, LandscapeEndpoints
from adapters.sandbox._traffic import TrafficGenerator
from adapters.sandbox.plugin import with_landscape
from collector import Role, load_settings
from tracing import correlation_id_for

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

OPERATOR = {"Authorization": "Bearer cm-operator"}
STEWARD_A = {"Authorization": "Bearer cm-steward-a"}
STEWARD_B = {"Authorization": "Bearer cm-steward-b"}
STAGES = ["erp", "billing", "crm", "support"]


class Stack:
    def __init__(self, landscape: Landscape, ep: LandscapeEndpoints, traffic: TrafficGenerator,
                 api: httpx.AsyncClient, erp: TrytonAdapter, sf: Any, zd: Any) -> None:  # fmt: skip
        self.landscape, self.ep, self.traffic, self.api, self.erp = (
            landscape, ep, traffic, api, erp
        )  # fmt: skip
        self.sf, self.zd = sf, zd

    async def customer(self) -> str:
        """A customer in all four systems (a won deal through quote-to-cash), synced
        once so the golden record holds its baseline."""
        opp = await self.traffic.create_deal(close="won")
        cid = correlation_id_for("crm", "opportunity", opp)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            r = await self.api.get(f"/api/v1/transactions/{cid}")
            events = r.json().get("events", []) if r.status_code == 200 else []
            done = [e for e in events if e["status"] == "ok"]
            if any(e["kind"] == "entitlement.activated" for e in done):
                customer_id = next(e["customer_id"] for e in done if e["customer_id"])
                synced = await self.api.post(f"/api/v1/customers/{customer_id}/sync")
                assert synced.status_code == 200, synced.text
                assert synced.json()["opened"] == []
                return str(customer_id)
            await asyncio.sleep(0.25)
        raise AssertionError(f"{opp} never reached its entitlement")

    async def sync(self, customer_id: str) -> list[dict[str, Any]]:
        r = await self.api.post(f"/api/v1/customers/{customer_id}/sync")
        assert r.status_code == 200, r.text
        opened: list[dict[str, Any]] = r.json()["opened"]
        return opened

    async def party(self, customer_id: str) -> dict[str, Any]:
        (party_id,) = (await self.erp.parties_by_code([customer_id]))[customer_id]
        (row,) = await self.erp.rpc.call("model.party.party.read", [party_id], ["name"])
        return dict(row) | {"id": party_id}

    async def rename_party(self, customer_id: str, name: str) -> None:
        party = await self.party(customer_id)
        await self.erp.rpc.call("model.party.party.write", [party["id"]], {"name": name})

    async def crm_account(self, customer_id: str) -> dict[str, Any]:
        return dict(await asyncio.to_thread(self.sf.Account.get, customer_id))

    async def billing_customer(self, customer_id: str) -> Any:
        import stripe

        record = (await self.api.get(f"/api/v1/customers/{customer_id}")).json()
        bid = record["xref"]["billing_customer_id"]
        client = stripe.StripeClient(
            self.ep.billing_api_key, base_addresses={"api": self.ep.direct["billing"]}
        )
        return await asyncio.to_thread(client.v1.customers.retrieve, bid)

    async def organization(self, customer_id: str) -> Any:
        record = (await self.api.get(f"/api/v1/customers/{customer_id}")).json()
        org = int(record["xref"]["support_organization_id"])
        return await asyncio.to_thread(lambda: self.zd.organizations(id=org))

    async def approve_twice(self, change_id: str) -> dict[str, Any]:
        first = await self.api.post(f"/api/v1/change-requests/{change_id}/approve",
                                    headers=STEWARD_A)  # fmt: skip
        assert first.status_code == 200, first.text
        assert first.json()["state"] == "pending"
        second = await self.api.post(f"/api/v1/change-requests/{change_id}/approve",
                                     headers=STEWARD_B)  # fmt: skip
        assert second.status_code == 200, second.text
        result: dict[str, Any] = second.json()
        return result


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    from simple_salesforce.api import Salesforce
    from zenpy import Zenpy

    from collector.host import Interlock

    workdir: Path = tmp_path_factory.mktemp("customers")
    api_port = free_port()
    landscape = Landscape(workdir, webhook_url=f"http://127.0.0.1:{api_port}/webhooks/stripe")
    ep = await asyncio.to_thread(landscape.start)
    settings = with_landscape(
        load_settings(
            env={
                "INTERLOCK_LINEAGE_PATH": str(workdir / "lineage.duckdb"),
                "INTERLOCK_LINEAGE_FLUSH_INTERVAL": "0.05",
                "INTERLOCK_RETRY_MAX_ATTEMPTS": "2",
                "INTERLOCK_RETRY_BASE_DELAY": "0.05",
                "INTERLOCK_RETRY_MAX_DELAY": "0.1",
                "INTERLOCK_CRM_POLL_INTERVAL": "0.2",
                "INTERLOCK_DEMO_ENABLED": "false",
                "INTERLOCK_RECONCILE_SCHEDULE": "",
                # Syncs here are asked for through the API, one customer at a time.
                "INTERLOCK_CUSTOMERS_POLL_INTERVAL": "0",
            }
        ),
        ep,
    )
    runtime = Interlock(settings, demo=False, api_port=api_port)
    info = await runtime.start()
    tokens: Any = runtime.app.state.tokens  # type: ignore[attr-defined]
    tokens.add("cm-operator", Role.OPERATOR, "cm-operator")
    tokens.add("steward-a", Role.APPROVER, "cm-steward-a")
    tokens.add("steward-b", Role.APPROVER, "cm-steward-b")
    traffic = TrafficGenerator(ep.crm_url, ep.crm_token, ca_file=ep.crm_ca_file, faults=False,
                               seed=14)  # fmt: skip
    api = httpx.AsyncClient(base_url=info.api_url, timeout=30, headers=OPERATOR)
    erp = TrytonAdapter(ep.direct["erp"], ep.erp_database, ep.erp_user, ep.erp_password)
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "ZENPY_FORCE_SCHEME",
                                             "ZENPY_FORCE_NETLOC")}  # fmt: skip
    os.environ["REQUESTS_CA_BUNDLE"] = ep.crm_ca_file
    os.environ["ZENPY_FORCE_SCHEME"] = "http"
    os.environ["ZENPY_FORCE_NETLOC"] = httpx.URL(
        ep.direct.get("support", ep.support_url)
    ).netloc.decode()
    sf = Salesforce(session_id=ep.crm_token, instance_url=ep.crm_url, version="60.0")
    zd = Zenpy(subdomain="sandbox", email=ep.support_email, token=ep.support_token,
               disable_cache=True)  # fmt: skip
    try:
        yield Stack(landscape, ep, traffic, api, erp, sf, zd)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        await erp.aclose()
        await api.aclose()
        await traffic.stop()
        await runtime.stop()
        await asyncio.to_thread(landscape.stop)


async def _steps(stack: Stack, correlation_id: str) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 10
    while True:
        r = await stack.api.get(f"/api/v1/transactions/{correlation_id}")
        events = r.json().get("events", []) if r.status_code == 200 else []
        steps = [(e["step"], e["status"]) for e in events if e["step"] != e["kind"]]
        if steps or time.monotonic() > deadline:
            return steps
        await asyncio.sleep(0.2)


async def test_a_critical_change_waits_for_approval_then_propagates_in_stages(
    stack: Stack,
) -> None:
    customer_id = await stack.customer()
    before = (await stack.crm_account(customer_id))["Name"]
    await stack.rename_party(customer_id, "Globex Holdings Ltd")

    (item,) = await stack.sync(customer_id)
    assert (item["kind"], item["field"], item["source"], item["state"]) == (
        "change_request", "legal_name", "erp", "pending",
    )  # fmt: skip
    listed = (await stack.api.get("/api/v1/change-requests", params={"state": "pending"})).json()
    assert item["change_id"] in [i["change_id"] for i in listed["items"]]
    # Nothing moves before approval.
    assert (await stack.crm_account(customer_id))["Name"] == before
    assert (await stack.billing_customer(customer_id)).name == before

    first = await stack.api.post(f"/api/v1/change-requests/{item['change_id']}/approve",
                                 headers=STEWARD_A)  # fmt: skip
    assert first.json()["state"] == "pending"
    again = await stack.api.post(f"/api/v1/change-requests/{item['change_id']}/approve",
                                 headers=STEWARD_A)  # fmt: skip
    assert again.status_code == 403, again.text
    assert (await stack.crm_account(customer_id))["Name"] == before
    viewer = await stack.api.post(f"/api/v1/change-requests/{item['change_id']}/approve")
    assert viewer.status_code == 403  # an operator is not an approver

    done = (await stack.api.post(f"/api/v1/change-requests/{item['change_id']}/approve",
                                 headers=STEWARD_B)).json()  # fmt: skip
    assert done["state"] == "done", done
    assert [(s["system"], s["status"]) for s in done["stages"]] == [(s, "ok") for s in STAGES]
    assert (await stack.crm_account(customer_id))["Name"] == "Globex Holdings Ltd"
    assert (await stack.billing_customer(customer_id)).name == "Globex Holdings Ltd"
    assert (await stack.organization(customer_id)).name == "Globex Holdings Ltd"
    assert (await stack.party(customer_id))["name"] == "Globex Holdings Ltd"

    steps = await _steps(stack, done["correlation_id"])
    assert [s for s, status in steps if status == "ok"] == [
        "erp.party.update", "billing.customer.update", "crm.account.update",
        "support.organization.update",
    ]  # fmt: skip
    record = (await stack.api.get(f"/api/v1/customers/{customer_id}")).json()
    assert record["name"] == "Globex Holdings Ltd"
    assert record["open_items"] == []
    assert record["transactions"], "the customer's order is listed with it"
    audit = (await stack.api.get("/api/v1/audit", params={"subject": item["change_id"]})).json()
    outcomes = sorted(e["outcome"] for e in audit["items"])
    assert outcomes == ["approved", "noted", "refused"]
    # A later sync finds nothing new: the change is settled everywhere.
    assert await stack.sync(customer_id) == []


async def test_a_failed_billing_stage_halts_crm_and_support_and_a_retry_completes(
    stack: Stack,
) -> None:
    customer_id = await stack.customer()
    before = (await stack.crm_account(customer_id))["Name"]
    await stack.rename_party(customer_id, "Initrode Group plc")
    (item,) = await stack.sync(customer_id)
    assert stack.landscape.billing_proxy is not None
    stack.landscape.billing_proxy.set(down=True)
    try:
        halted = await stack.approve_twice(item["change_id"])
    finally:
        stack.landscape.billing_proxy.clear()
    assert halted["state"] == "halted", halted
    assert [(s["system"], s["status"]) for s in halted["stages"]] == [
        ("erp", "ok"), ("billing", "failed"), ("crm", "pending"), ("support", "pending"),
    ]  # fmt: skip
    assert "503" in (halted["stages"][1]["error"] or "")
    assert (await stack.crm_account(customer_id))["Name"] == before
    assert (await stack.organization(customer_id)).name == before

    retried = await stack.api.post(f"/api/v1/change-requests/{item['change_id']}/retry")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["state"] == "done"
    assert [(s["system"], s["status"]) for s in body["stages"]] == [(s, "ok") for s in STAGES]
    assert (await stack.billing_customer(customer_id)).name == "Initrode Group plc"
    assert (await stack.crm_account(customer_id))["Name"] == "Initrode Group plc"
    assert (await stack.organization(customer_id)).name == "Initrode Group plc"
    steps = await _steps(stack, body["correlation_id"])
    assert ("billing.customer.update", "dead_lettered") in steps
    assert ("billing.customer.update", "ok") in steps


async def test_a_conflicting_edit_lands_in_stewardship(stack: Stack) -> None:
    customer_id = await stack.customer()
    await stack.rename_party(customer_id, "Umbrella Corporation")
    await asyncio.to_thread(stack.sf.Account.update, customer_id, {"Name": "Umbrella Corp."})

    (item,) = await stack.sync(customer_id)
    assert (item["kind"], item["field"], item["state"]) == ("stewardship", "legal_name", "pending")
    assert item["values_seen"]["erp"] == "Umbrella Corporation"
    assert item["values_seen"]["crm"] == "Umbrella Corp."
    queue = (await stack.api.get("/api/v1/stewardship")).json()
    assert item["change_id"] in [i["change_id"] for i in queue["items"]]
    # Nothing was overwritten on either side, and no change request was raised.
    assert (await stack.party(customer_id))["name"] == "Umbrella Corporation"
    assert (await stack.crm_account(customer_id))["Name"] == "Umbrella Corp."
    assert await stack.sync(customer_id) == []

    resolved = await stack.api.post(
        f"/api/v1/stewardship/{item['change_id']}/resolve",
        json={"winner": "crm", "reason": "the registry lists Umbrella Corp."},
        headers=STEWARD_A,
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["state"] == "done"
    assert (await stack.party(customer_id))["name"] == "Umbrella Corp."
    # The steward's decision stands: a later edit at a consumer is reverted to it.
    await asyncio.to_thread(stack.sf.Account.update, customer_id, {"Name": "Umbrella"})
    (revert,) = await stack.sync(customer_id)
    assert (revert["kind"], revert["state"]) == ("propagation", "done")
    assert (await stack.crm_account(customer_id))["Name"] == "Umbrella Corp."


async def test_a_crm_edit_to_an_erp_owned_field_does_not_overwrite_the_erp(stack: Stack) -> None:
    customer_id = await stack.customer()
    erp_name = (await stack.party(customer_id))["name"]
    await asyncio.to_thread(stack.sf.Account.update, customer_id, {"Name": "Renamed by sales"})
    # A new won deal for the account reaches ensure_party with the CRM's name.
    opp = await stack.traffic.create_deal(account_id=customer_id, close="won")
    cid = correlation_id_for("crm", "opportunity", opp)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = await stack.api.get(f"/api/v1/transactions/{cid}")
        kinds = {e["kind"] for e in r.json().get("events", [])} if r.status_code == 200 else set()
        if "order.confirmed" in kinds:
            break
        await asyncio.sleep(0.25)
    assert (await stack.party(customer_id))["name"] == erp_name

    (item,) = await stack.sync(customer_id)
    assert (item["kind"], item["source"], item["targets"]) == ("propagation", "erp", ["crm"])
    assert item["state"] == "done"
    assert (await stack.party(customer_id))["name"] == erp_name
    assert (await stack.crm_account(customer_id))["Name"] == erp_name


async def test_a_reparenting_reaches_all_four_systems(stack: Stack) -> None:
    parent = await stack.customer()
    child = await stack.customer()
    await asyncio.to_thread(stack.sf.Account.update, child, {"ParentId": parent})

    (item,) = await stack.sync(child)
    assert (item["kind"], item["field"], item["source"]) == (
        "change_request", "parent_account", "crm",
    )  # fmt: skip
    done = await stack.approve_twice(item["change_id"])
    assert done["state"] == "done", done
    assert [s["system"] for s in done["stages"]] == STAGES

    child_party = (await stack.party(child))["id"]
    parent_party = (await stack.party(parent))["id"]
    relations = await stack.erp.rpc.call(
        "model.party.relation.all.search_read", [["from_", "=", parent_party]], 0, None, None,
        ["to", "type.name"],
    )  # fmt: skip
    assert [(r["to"], r["type."]["name"]) for r in relations] == [(child_party, "Parent of")]
    assert (await stack.billing_customer(child)).metadata["interlock_parent_customer_id"] == parent
    org = await stack.organization(child)
    assert org.organization_fields["parent_customer_id"] == parent
    assert (await stack.crm_account(child))["ParentId"] == parent
    record = (await stack.api.get(f"/api/v1/customers/{child}")).json()
    assert record["record"]["parent_account"]["value"] == parent


PAGE = Path(__file__).resolve().parents[2] / "dashboards" / "pages" / "35_Customers.py"


async def _page(stack: Stack, token: str, monkeypatch: pytest.MonkeyPatch, **picks: str) -> Any:
    """The Customers page as ``token`` sees it, run off the loop that serves the API."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INTERLOCK_API_URL", str(stack.api.base_url))
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["api_token"] = token
    for key, value in picks.items():
        at.session_state[key] = value
    return await asyncio.to_thread(at.run)


async def test_the_customers_page_shows_the_record_and_stewards_approve_there(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = await stack.customer()
    await stack.rename_party(customer_id, "Initech Group plc")
    (item,) = await stack.sync(customer_id)

    at = await _page(stack, "cm-steward-a", monkeypatch, cu_q=customer_id)
    assert not at.exception, at.exception
    record = at.dataframe[0].value
    assert dict(zip(record["field"], record["from"], strict=True))["legal name"] == "erp"
    ids = dict(zip(at.dataframe[1].value["system"], at.dataframe[1].value["id"], strict=True))
    assert ids["CRM account"] == customer_id and "not linked" not in ids.values()
    waiting = at.dataframe[2].value
    assert list(waiting["change"]) == [item["change_id"]]
    assert list(waiting["new value"]) == ["Initech Group plc"]
    assert list(waiting["state"]) == ["pending"]

    at.button(key="cu_approve").click()
    at = await asyncio.to_thread(at.run)
    assert "a second person must approve" in "\n".join(s.value for s in at.success)
    at.button(key="cu_approve").click()  # the same steward again: refused, with the reason
    at = await asyncio.to_thread(at.run)
    assert "Refused (403)" in "\n".join(e.value for e in at.error)
    assert (await stack.crm_account(customer_id))["Name"] != "Initech Group plc"
    operator = await _page(stack, "cm-operator", monkeypatch, cu_q=customer_id)
    assert not operator.exception
    assert not [b for b in operator.button if b.key in ("cu_approve", "cu_reject")]
    assert "needs the approver role" in "\n".join(i.value for i in operator.info)

    at = await _page(stack, "cm-steward-b", monkeypatch, cu_q=customer_id)
    at.button(key="cu_approve").click()
    at = await asyncio.to_thread(at.run)
    assert "propagating in stages" in "\n".join(s.value for s in at.success)
    assert (await stack.crm_account(customer_id))["Name"] == "Initech Group plc"
    assert "Nothing waits for a steward." in "\n".join(s.value for s in at.success)
