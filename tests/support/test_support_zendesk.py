"""ZendeskAdapter against the running Zendesk sandbox."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
import pytest

from adapters import Customer, OrderLine, RetryPolicy, SalesOrder, retry_call
from adapters.sandbox import free_port
from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.support import ZendeskAdapter
from tracing import AuthError, DownstreamUnavailable, RateLimited, ValidationError


def _customer(name: str | None = None) -> Customer:
    tag = uuid.uuid4().hex[:8]
    return Customer(customer_id=f"001Wz{tag}AAAAA", name=name or f"Acme {tag}")


def _order(customer: Customer) -> SalesOrder:
    return SalesOrder(
        order_ref=f"006Wz{uuid.uuid4().hex[:10]}",
        customer=customer,
        currency="EUR",
        lines=[
            OrderLine(sku="PRO", quantity=Decimal(1), unit_price=Decimal(1000)),
            OrderLine(sku="SEAT", quantity=Decimal(5), unit_price=Decimal(50)),
            OrderLine(sku="PRO", quantity=Decimal(1), unit_price=Decimal(0)),
        ],
    )


def _http(zd: ZendeskSandbox) -> httpx.Client:
    return httpx.Client(base_url=zd.url, auth=(f"{zd.email}/token", zd.api_token))


async def test_health(adapter: ZendeskAdapter, zd_sandbox: ZendeskSandbox) -> None:
    assert await adapter.health() is True
    async with ZendeskAdapter(zd_sandbox.url, zd_sandbox.email, "wrong") as stranger:
        assert await stranger.health() is False
        with pytest.raises(AuthError) as info:
            await stranger.ensure_organization(_customer(), idempotency_key="k")
        assert info.value.status == 401


async def test_ensure_organization_is_idempotent(
    adapter: ZendeskAdapter, zd_sandbox: ZendeskSandbox
) -> None:
    customer = _customer()
    first = await adapter.ensure_organization(customer, idempotency_key="a")
    again = await adapter.ensure_organization(customer, idempotency_key="a")
    other_key = await adapter.ensure_organization(customer, idempotency_key="b")
    assert first == again == other_key
    with _http(zd_sandbox) as http:
        found = http.get(
            "/api/v2/organizations/search.json", params={"external_id": customer.customer_id}
        ).json()["organizations"]
    assert [(str(o["id"]), o["name"]) for o in found] == [(first, customer.name)]


async def test_name_clash_is_a_validation_error_naming_the_field(
    adapter: ZendeskAdapter,
) -> None:
    taken = _customer()
    await adapter.ensure_organization(taken, idempotency_key="x")
    with pytest.raises(ValidationError) as info:
        await adapter.ensure_organization(_customer(name=taken.name), idempotency_key="y")
    assert info.value.field == "name"


async def test_activate_entitlement_is_idempotent(
    adapter: ZendeskAdapter, zd_sandbox: ZendeskSandbox
) -> None:
    customer = _customer()
    order = _order(customer)
    key = f"onboard:{order.order_ref}"
    org_id = await adapter.ensure_organization(customer, idempotency_key=key)
    case = await adapter.activate_entitlement(org_id, order, idempotency_key=key)
    repeat = await adapter.activate_entitlement(org_id, order, idempotency_key=key)
    assert repeat == case
    assert case.customer_id == customer.customer_id
    assert isinstance(org_id, str)  # the support port's IDs are strings
    assert case.organization_id == int(org_id)
    assert (case.status, case.priority) == ("new", "normal")
    assert order.order_ref in case.subject
    with _http(zd_sandbox) as http:
        tickets = http.get("/api/v2/tickets.json", params={"external_id": key}).json()["tickets"]
        org = http.get(f"/api/v2/organizations/{org_id}.json").json()["organization"]
    assert [t["id"] for t in tickets] == [int(case.case_id)]
    assert tickets[0]["organization_id"] == int(org_id)
    assert org["organization_fields"] == {
        "entitlement": ["PRO", "SEAT"],
        "entitlement_status": "active",
        "order_ref": order.order_ref,
    }


async def test_429_retry_after_is_honoured(
    adapter: ZendeskAdapter, zd_sandbox: ZendeskSandbox
) -> None:
    customer = _customer()
    with _http(zd_sandbox) as http:
        http.post("/_sandbox/faults", json={"rate_limit_next": 1, "retry_after": 1})
    with pytest.raises(RateLimited) as info:
        await adapter.ensure_organization(customer, idempotency_key="r")
    assert info.value.retry_after == 1.0 and info.value.retriable

    with _http(zd_sandbox) as http:
        http.post("/_sandbox/faults", json={"rate_limit_next": 1, "retry_after": 1})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)  # really wait, as the retry would

    org_id = await retry_call(
        lambda: adapter.ensure_organization(customer, idempotency_key="r"),
        RetryPolicy(base_delay=0.01),
        sleep=sleep,
    )
    assert waits == [1.0] and int(org_id) > 0


async def test_unavailable_and_unreachable(
    adapter: ZendeskAdapter, zd_sandbox: ZendeskSandbox
) -> None:
    with _http(zd_sandbox) as http:
        http.post("/_sandbox/faults", json={"fail_next": 1})
    with pytest.raises(DownstreamUnavailable) as down:
        await adapter.ensure_organization(_customer(), idempotency_key="f")
    assert down.value.status == 503
    async with ZendeskAdapter(f"http://127.0.0.1:{free_port()}", "e", "t", timeout=1) as gone:
        with pytest.raises(DownstreamUnavailable):
            await gone.ensure_organization(_customer(), idempotency_key="g")
        assert await gone.health() is False


def test_repr_never_shows_the_token(zd_sandbox: ZendeskSandbox) -> None:
    adapter = ZendeskAdapter(zd_sandbox.url, zd_sandbox.email, zd_sandbox.api_token)
    assert zd_sandbox.api_token not in repr(adapter)
