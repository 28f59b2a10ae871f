"""The ServiceNow adapter against the sandbox: idempotent accounts and cases, work
notes, priority, open cases, and the desk's errors as Interlock errors."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from decimal import Decimal

import httpx
import pytest

from adapters import Customer, OrderLine, RetryPolicy, SalesOrder, retry_call
from adapters.flows import ENTITLEMENT_KEY_PREFIX, entitlement_key
from adapters.sandbox import free_port
from adapters.sandbox.servicenow import ServiceNowSandbox
from adapters.servicenow import ServiceNowAdapter
from tracing import AuthError, DownstreamUnavailable, RateLimited, ValidationError


def _customer(name: str | None = None) -> Customer:
    tag = uuid.uuid4().hex[:8]
    return Customer(customer_id=f"001{tag}", name=name or f"Acme {tag}")


def _order(customer: Customer) -> SalesOrder:
    return SalesOrder(
        order_ref=f"006{uuid.uuid4().hex[:8]}",
        customer=customer,
        currency="USD",
        lines=[
            OrderLine(sku="PRO", quantity=Decimal(1), unit_price=Decimal("99")),
            OrderLine(sku="SEAT", quantity=Decimal(3), unit_price=Decimal("10")),
        ],
    )


def _http(sn: ServiceNowSandbox) -> httpx.Client:
    return httpx.Client(
        base_url=sn.url,
        auth=(sn.username, sn.password),
        verify=ssl.create_default_context(cafile=sn.ca_file),
    )


def _faults(sn: ServiceNowSandbox, **body: int) -> None:
    with _http(sn) as http:
        assert http.post("/_sandbox/faults", json=body).status_code == 200


async def test_health(adapter: ServiceNowAdapter, sn_sandbox: ServiceNowSandbox) -> None:
    assert await adapter.health() is True
    async with ServiceNowAdapter(
        sn_sandbox.url, username=sn_sandbox.username, password="wrong", ca_file=sn_sandbox.ca_file
    ) as stranger:
        assert await stranger.health() is False
        with pytest.raises(AuthError) as info:
            await stranger.ensure_organization(_customer(), idempotency_key="k")
        assert info.value.status == 401


async def test_ensure_organization_is_idempotent(
    adapter: ServiceNowAdapter, sn_sandbox: ServiceNowSandbox
) -> None:
    customer = _customer()
    first = await adapter.ensure_organization(customer, idempotency_key="a")
    again = await adapter.ensure_organization(customer, idempotency_key="b")
    assert first == again and len(first) == 32
    with _http(sn_sandbox) as http:
        rows = http.get(
            "/api/now/table/customer_account",
            params={"sysparm_query": f"u_external_id={customer.customer_id}"},
        ).json()["result"]
    assert [(r["sys_id"], r["name"]) for r in rows] == [(first, customer.name)]


async def test_activate_entitlement_opens_one_case(
    adapter: ServiceNowAdapter, sn_sandbox: ServiceNowSandbox
) -> None:
    customer = _customer()
    order = _order(customer)
    key = f"support.entitlement:{order.order_ref}"
    account = await adapter.ensure_organization(customer, idempotency_key=key)
    case = await adapter.activate_entitlement(account, order, idempotency_key=key)
    repeat = await adapter.activate_entitlement(account, order, idempotency_key=key)
    assert repeat.case_id == case.case_id
    assert (case.status, case.priority) == ("new", "low")
    assert order.order_ref in case.subject
    with _http(sn_sandbox) as http:
        cases = http.get(
            "/api/now/table/sn_customerservice_case",
            params={"sysparm_query": f"correlation_id={key}"},
        ).json()["result"]
        acct = http.get(f"/api/now/table/customer_account/{account}").json()["result"]
    assert [c["sys_id"] for c in cases] == [case.case_id]
    # A reference comes as {"value", "link"} unless sysparm_exclude_reference_link is set.
    assert cases[0]["account"]["value"] == account and "onboarding" in cases[0]["u_tags"]
    assert acct["notes"] == f"Entitled: PRO, SEAT (order {order.order_ref}, active)"


async def test_work_note_priority_and_open_cases(
    adapter: ServiceNowAdapter, sn_sandbox: ServiceNowSandbox
) -> None:
    customer = _customer()
    account = await adapter.ensure_organization(customer, idempotency_key="o")
    cases = [
        await adapter.create_case(
            account,
            customer_id=customer.customer_id,
            short_description=f"Case {i}",
            description="",
            idempotency_key=f"case:{customer.customer_id}:{i}",
        )
        for i in range(3)
    ]
    with _http(sn_sandbox) as http:
        closed = http.patch(
            f"/api/now/table/sn_customerservice_case/{cases[2].case_id}", json={"state": "3"}
        )
    assert closed.status_code == 200
    raised = await adapter.set_priority(cases[0].case_id, 1)
    assert raised.priority == "urgent"
    await adapter.add_work_note(cases[0].case_id, "Credit hold: exposure 12,000 over limit")
    open_cases = await adapter.list_open_cases(account)
    assert [c.case_id for c in open_cases] == [cases[0].case_id, cases[1].case_id]
    with _http(sn_sandbox) as http:
        notes = http.get(
            "/api/now/table/sys_journal_field",
            params={"sysparm_query": f"element_id={cases[0].case_id}^element=work_notes"},
        ).json()["result"]
    assert [n["value"] for n in notes] == ["Credit hold: exposure 12,000 over limit"]


async def test_bad_input_is_a_validation_error(adapter: ServiceNowAdapter) -> None:
    account = await adapter.ensure_organization(_customer(), idempotency_key="v")
    # A data policy (mandatory short description) answers 403: still bad input.
    with pytest.raises(ValidationError) as policy:
        await adapter.create_case(
            account, customer_id="c", short_description="", description="", idempotency_key="v1"
        )
    assert policy.value.system == "servicenow"
    with pytest.raises(ValidationError) as unknown:
        await adapter.add_work_note("0" * 32, "nobody home")  # 404: no such case
    assert unknown.value.system == "servicenow"
    with pytest.raises(ValidationError):
        await adapter.set_priority(account, 9)  # refused before any call
    with pytest.raises(ValidationError):
        await adapter.add_work_note("../customer_account", "x")  # not a sys_id


async def test_429_retry_after_is_honoured(
    adapter: ServiceNowAdapter, sn_sandbox: ServiceNowSandbox
) -> None:
    customer = _customer()
    _faults(sn_sandbox, rate_limit_next=1, retry_after=1)
    with pytest.raises(RateLimited) as info:
        await adapter.ensure_organization(customer, idempotency_key="r")
    assert info.value.retry_after == 1.0 and info.value.retriable
    _faults(sn_sandbox, rate_limit_next=1, retry_after=1)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    account = await retry_call(
        lambda: adapter.ensure_organization(customer, idempotency_key="r"),
        RetryPolicy(base_delay=0.01),
        sleep=sleep,
    )
    assert waits == [1.0] and len(account) == 32


async def test_oauth_token_is_fetched_and_renewed_after_a_401(
    sn_sandbox: ServiceNowSandbox,
) -> None:
    async with ServiceNowAdapter(
        sn_sandbox.url,
        username=sn_sandbox.username,
        password=sn_sandbox.password,
        client_id=sn_sandbox.client_id,
        client_secret=sn_sandbox.client_secret,
        ca_file=sn_sandbox.ca_file,
    ) as sn:
        assert await sn.health() is True
        with _http(sn_sandbox) as http:
            assert http.post("/_sandbox/revoke_tokens").json()["revoked"] >= 1
        # The old token is refused; the adapter fetches a new one and goes on.
        assert len(await sn.ensure_organization(_customer(), idempotency_key="t")) == 32
        assert sn_sandbox.password not in repr(sn) and sn_sandbox.client_secret not in repr(sn)
    async with ServiceNowAdapter(
        sn_sandbox.url,
        username=sn_sandbox.username,
        password=sn_sandbox.password,
        client_id=sn_sandbox.client_id,
        client_secret="wrong",
        ca_file=sn_sandbox.ca_file,
    ) as bad:
        with pytest.raises(AuthError):
            await bad.ensure_organization(_customer(), idempotency_key="t")


async def test_unavailable_and_unreachable(
    adapter: ServiceNowAdapter, sn_sandbox: ServiceNowSandbox
) -> None:
    _faults(sn_sandbox, fail_next=1)
    with pytest.raises(DownstreamUnavailable) as down:
        await adapter.ensure_organization(_customer(), idempotency_key="f")
    assert down.value.status == 503
    async with ServiceNowAdapter(
        f"https://127.0.0.1:{free_port()}", username="u", password="p", timeout=1
    ) as gone:
        with pytest.raises(DownstreamUnavailable):
            await gone.ensure_organization(_customer(), idempotency_key="g")
        assert await gone.health() is False


async def test_reconciliation_reads_cases_by_key_and_accounts_by_customer(
    adapter: ServiceNowAdapter,
) -> None:
    customer = _customer()
    order = _order(customer)
    key = entitlement_key(order.order_ref)
    account = await adapter.ensure_organization(customer, idempotency_key=key)
    case = await adapter.activate_entitlement(account, order, idempotency_key=key)
    cases = await adapter.tickets_by_external_id(ENTITLEMENT_KEY_PREFIX)
    assert cases[key] == [case.case_id]
    accounts = await adapter.organizations_by_external_id()
    assert accounts[customer.customer_id] == [account]
