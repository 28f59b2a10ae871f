"""The credit hold end to end: real Tryton refuses the order over the party's credit
limit; the transaction is ``on_hold`` (not a dead letter), published to the CRM
sandbox (opportunity, account, Task) and the chosen desk (open cases raised and
tagged, a note), and released when the limit is raised in the ERP: confirmed, the
holds lifted, then billing and support as usual. Once per desk, like
``test_quote_to_cash_e2e``, whose stack it shares."""

# The shared stack's fixtures are imported, so their names are parameters here too.
# ruff: noqa: F811
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters import Customer
from adapters.erp import TrytonAdapter
from adapters.flows._credit_release import CreditReleaser
from collector import Role
from tracing import correlation_id_for

from .conftest import SharedLandscape, landscape_for_runtimes
from .test_quote_to_cash_e2e import Stack, _has, erp, stack  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def shared_landscape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedLandscape]:
    """This module's own landscape, shared by its two desks' runs: after quote-to-cash's
    runs on the session's landscape, the four-eyes override test found its hold already
    released (404 where 409 was due), so the holds run apart from them."""
    with landscape_for_runtimes(tmp_path_factory.mktemp("credit-hold-landscape")) as shared:
        yield shared


def _crm(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{stack.ep.crm_url}/services/data/v60.0",
        verify=ssl.create_default_context(cafile=stack.ep.crm_ca_file),
        headers={"Authorization": f"Bearer {stack.ep.crm_token}"},
    )


def _desk(stack: Stack) -> httpx.Client:
    if stack.desk == "zendesk":
        return httpx.Client(
            base_url=f"{stack.ep.support_url}/api/v2",
            auth=(f"{stack.ep.support_email}/token", stack.ep.support_token),
        )
    return httpx.Client(
        base_url=f"{stack.ep.servicenow_url}/api/now/table",
        auth=(stack.ep.servicenow_username, stack.ep.servicenow_password),
        verify=ssl.create_default_context(cafile=stack.ep.servicenow_ca_file),
    )


async def _open_case(stack: Stack, customer: Customer) -> str:
    """An open, normal-priority case of the customer's organization, before the hold."""
    desk = stack.runtime.host.adapter("support" if stack.desk == "zendesk" else "servicenow")
    org = await desk.ensure_organization(customer, idempotency_key="test")  # type: ignore[attr-defined]
    with _desk(stack) as c:
        if stack.desk == "zendesk":
            body = {"subject": "Login fails", "comment": {"body": "help"}}
            r = c.post(
                "/tickets.json",
                json={"ticket": {**body, "organization_id": int(org), "priority": "normal"}},
            )
            return str(r.json()["ticket"]["id"])
        r = c.post(
            "/sn_customerservice_case",
            json={"account": org, "short_description": "Login fails", "priority": "3"},
        )
        return str(r.json()["result"]["sys_id"])


def _case(stack: Stack, case_id: str) -> dict[str, Any]:
    with _desk(stack) as c:
        if stack.desk == "zendesk":
            ticket = c.get(f"/tickets/{case_id}.json").json()["ticket"]
            return {"priority": ticket["priority"], "tags": ticket["tags"]}
        row = c.get(f"/sn_customerservice_case/{case_id}").json()["result"]
        tags = [t for t in str(row.get("u_tags") or "").split(",") if t]
        return {"priority": {"2": "high", "3": "normal"}.get(row["priority"]), "tags": tags}


def _org_notes(stack: Stack, customer_id: str) -> str:
    with _desk(stack) as c:
        if stack.desk == "zendesk":
            r = c.get("/organizations/search.json", params={"external_id": customer_id})
            return str(r.json()["organizations"][0].get("notes") or "")
        r = c.get("/customer_account", params={"sysparm_query": f"u_external_id={customer_id}"})
        return str(r.json()["result"][0].get("notes") or "")


async def test_a_credit_hold_is_published_and_released_by_a_raised_limit(
    stack: Stack,
    erp: TrytonAdapter,
) -> None:
    account = await stack.traffic.create_account()
    customer = Customer(customer_id=account, name="Held Industries")
    party = await erp.ensure_party(customer)
    await erp.set_credit_limit(party, Decimal("1"))
    case_id = await _open_case(stack, customer)

    opp = await stack.traffic.create_deal(account_id=account, close="won")
    tx = await stack.wait_for(
        opp,
        lambda t: (
            t["state"] == "on_hold"
            and _has("crm.hold.published")(t)
            and _has("support.hold.published")(t)
        ),
    )
    cid = correlation_id_for("crm", "opportunity", opp)
    # A business state, not a dead letter; nothing billed, nothing entitled.
    kinds = {e["kind"] for e in tx["events"]}
    assert "subscription.created" not in kinds and "entitlement.activated" not in kinds
    assert not [e for e in tx["events"] if e["status"] == "dead_lettered"]
    hold = next(e for e in tx["events"] if e["kind"] == "order.on_hold")
    assert hold["status"] == "ok" and hold["step"] == "erp.order.hold"
    assert hold["payload"]["reason"] == "credit"
    assert Decimal(hold["payload"]["limit"]) == Decimal("1")
    assert Decimal(hold["payload"]["amount"]) == Decimal(hold["amount"]) > 0
    assert Decimal(hold["payload"]["exposure"]) >= 0
    held = (await stack.api.get("/api/v1/transactions", params={"state": "on_hold"})).json()
    assert cid in [t["correlation_id"] for t in held["items"]]

    # The CRM shows it on the opportunity and the account, and the owner has a Task.
    async with _crm(stack) as crm:
        opp_row = (await crm.get(f"/sobjects/Opportunity/{opp}")).json()
        acc_row = (await crm.get(f"/sobjects/Account/{account}")).json()
        tasks = (
            await crm.get(
                "/query",
                params={
                    "q": f"SELECT Id, Subject FROM Task WHERE Interlock_Key__c = "
                    f"'crm.hold.task:{opp}'"
                },
            )
        ).json()["records"]
    assert opp_row["Credit_Hold__c"] is True and opp_row["Credit_Hold_Reason__c"] == "credit"
    assert acc_row["Credit_Hold__c"] is True
    assert Decimal(str(acc_row["Credit_Limit__c"])) == Decimal("1")
    assert len(tasks) == 1 and "Credit hold" in tasks[0]["Subject"]
    # The desk: the open case raised and tagged, the organization noted.
    case = await asyncio.to_thread(_case, stack, case_id)
    assert case["priority"] == "high" and "credit_hold" in case["tags"]
    assert "Credit hold on order" in await asyncio.to_thread(_org_notes, stack, account)

    # Finance raises the limit in the ERP; the poll notices and the order goes on.
    releaser = CreditReleaser(erp, stack.runtime.bus, stack.runtime.lineage)
    assert await releaser.poll_once() == []  # nothing changed yet
    await erp.set_credit_limit(party, Decimal("10000000"))
    published = await releaser.poll_once()
    assert [e.correlation_id for e in published] == [cid]
    tx = await stack.wait_for(
        opp,
        lambda t: (
            t["state"] != "on_hold"
            and _has("crm.hold.lifted")(t)
            and _has("support.hold.lifted")(t)
            and _has("entitlement.activated")(t)
        ),
    )
    confirmed = [e for e in tx["events"] if e["kind"] == "order.confirmed"]
    assert confirmed[-1]["payload"]["released_from_hold"] is True
    sale = await erp.find_sale(opp)
    assert sale is not None and sale.is_confirmed
    async with _crm(stack) as crm:
        opp_row = (await crm.get(f"/sobjects/Opportunity/{opp}")).json()
        acc_row = (await crm.get(f"/sobjects/Account/{account}")).json()
    assert opp_row["Credit_Hold__c"] is False and acc_row["Credit_Hold__c"] is False
    case = await asyncio.to_thread(_case, stack, case_id)
    assert case["priority"] == "normal" and "credit_hold" not in case["tags"]
    if stack.desk == "zendesk":
        # ServiceNow's entitlement step writes the account's notes whole, after the lift.
        assert "released" in await asyncio.to_thread(_org_notes, stack, account)
    # Released once: a later poll finds nothing held.
    assert await releaser.poll_once() == []


async def test_an_override_needs_a_second_person_and_releases_the_hold(
    stack: Stack,
    erp: TrytonAdapter,
) -> None:
    tokens = stack.runtime.app.state.tokens
    tokens.add("fiona", Role.APPROVER, "fiona-token")
    tokens.add("gary", Role.APPROVER, "gary-token")
    account = await stack.traffic.create_account()
    customer = Customer(customer_id=account, name="Overridden plc")
    party = await erp.ensure_party(customer)
    await erp.set_credit_limit(party, Decimal("1"))
    opp = await stack.traffic.create_deal(account_id=account, close="won")
    await stack.wait_for(opp, lambda t: t["state"] == "on_hold" and _has("crm.hold.published")(t))
    cid = correlation_id_for("crm", "opportunity", opp)

    def as_(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # A viewer may not ask; approving before anyone asked is a conflict.
    r = await stack.api.post(f"/api/v1/holds/{cid}/override", json={"reason": "x"})
    assert r.status_code == 403
    r = await stack.api.post(f"/api/v1/holds/{cid}/override/approve", headers=as_("gary-token"))
    assert r.status_code == 409
    r = await stack.api.post(
        f"/api/v1/holds/{cid}/override",
        json={"reason": "strategic customer, CFO agreed"},
        headers=as_("fiona-token"),
    )
    assert r.status_code == 202, r.text
    # Four eyes: the requester's own approval is refused, and audited as refused.
    r = await stack.api.post(f"/api/v1/holds/{cid}/override/approve", headers=as_("fiona-token"))
    assert r.status_code == 403 and "may not approve" in r.json()["detail"]
    tx = await stack.transaction(opp)
    assert tx is not None and tx["state"] == "on_hold"
    r = await stack.api.post(f"/api/v1/holds/{cid}/override/approve", headers=as_("gary-token"))
    assert r.status_code == 200, r.text

    tx = await stack.wait_for(
        opp,
        lambda t: (
            t["state"] != "on_hold"
            and _has("crm.hold.lifted")(t)
            and _has("support.hold.lifted")(t)
            and _has("subscription.created")(t)
        ),
    )
    override = next(e for e in tx["events"] if e["kind"] == "order.hold.override")
    assert "fiona" in override["payload"]["released_by"]
    assert "gary" in override["payload"]["released_by"]
    sale = await erp.find_sale(opp)
    assert sale is not None and sale.is_confirmed
    # The override confirmed this sale only: the party's limit is as finance left it.
    assert (await erp.credit_position(party))[1] == Decimal("1")
    audit = (
        await stack.api.get("/api/v1/audit", params={"subject": cid}, headers=as_("gary-token"))
    ).json()
    outcomes = sorted((e["action"], e["outcome"]) for e in audit["items"])
    assert outcomes == [
        ("hold.override.approve", "approved"),
        ("hold.override.approve", "refused"),
        ("hold.override.request", "requested"),
    ]
