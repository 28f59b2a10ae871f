"""BillingAdapter against a real localstripe: idempotency, plans, paid invoices, errors."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters._canonical import BillingInterval, Customer, OrderLine
from adapters.billing import BillingAdapter, plan_id_for
from adapters.sandbox.localstripe import LocalStripeServer
from tracing import AuthError, DownstreamUnavailable, RateLimited, ValidationError

pytestmark = pytest.mark.slow


async def _count_customers(localstripe: LocalStripeServer, customer_id: str) -> int:
    async with httpx.AsyncClient(base_url=localstripe.url) as client:
        headers = {"Authorization": f"Bearer {localstripe.api_key}"}
        seen, after = 0, None
        while True:
            params = {"limit": "100", **({"starting_after": after} if after else {})}
            page = (await client.get("/v1/customers", params=params, headers=headers)).json()
            seen += sum(
                1 for c in page["data"] if c["metadata"].get("interlock_customer_id") == customer_id
            )
            if not page["has_more"]:
                return seen
            after = page["data"][-1]["id"]


async def test_health(billing: BillingAdapter) -> None:
    assert await billing.health() is True


async def test_health_is_false_when_nothing_listens() -> None:
    from collector.process import free_port

    async with BillingAdapter(f"http://127.0.0.1:{free_port()}", "sk_test_x") as adapter:
        assert await adapter.health() is False


async def test_ensure_customer_twice_makes_one(
    billing: BillingAdapter, localstripe: LocalStripeServer, new_customer: Any
) -> None:
    customer = new_customer()
    first = await billing.ensure_customer(customer, idempotency_key="c1-" + customer.customer_id)
    second = await billing.ensure_customer(customer, idempotency_key="c2-" + customer.customer_id)
    assert first == second and first.startswith("cus_")
    assert await _count_customers(localstripe, customer.customer_id) == 1


async def test_ensure_customer_finds_one_beyond_the_first_page(
    localstripe: LocalStripeServer, new_customer: Any
) -> None:
    async with BillingAdapter(localstripe.url, localstripe.api_key, page_size=2) as adapter:
        customers = [new_customer(f"Paged {i}") for i in range(5)]
        ids = [await adapter.ensure_customer(c, idempotency_key=c.customer_id) for c in customers]
        again = await adapter.ensure_customer(customers[0], idempotency_key="again")
        assert again == ids[0]
        assert await _count_customers(localstripe, customers[0].customer_id) == 1


async def test_ensure_customer_concurrently_makes_one(
    billing: BillingAdapter, localstripe: LocalStripeServer, new_customer: Any
) -> None:
    customer = new_customer()
    ids = await asyncio.gather(
        *(billing.ensure_customer(customer, idempotency_key=f"k{i}") for i in range(5))
    )
    assert len(set(ids)) == 1
    assert await _count_customers(localstripe, customer.customer_id) == 1


async def test_ensure_plan_is_deterministic(billing: BillingAdapter) -> None:
    sku = "SKU-" + uuid.uuid4().hex[:6]
    a = await billing.ensure_plan(sku, Decimal("10.00"), "EUR", BillingInterval.MONTH)
    b = await billing.ensure_plan(sku, Decimal("10"), "eur", BillingInterval.MONTH)
    c = await billing.ensure_plan(sku, Decimal("11.00"), "EUR", BillingInterval.MONTH)
    d = await billing.ensure_plan(sku, Decimal("10.00"), "EUR", BillingInterval.YEAR)
    assert a == b == plan_id_for(sku, 1000, "eur", BillingInterval.MONTH)
    assert len({a, c, d}) == 3


async def test_ensure_plan_refuses_fractions_of_a_cent(billing: BillingAdapter) -> None:
    with pytest.raises(ValidationError):
        await billing.ensure_plan("X", Decimal("1.005"), "EUR", BillingInterval.MONTH)


async def test_create_subscription_twice_makes_one_with_metadata(
    billing: BillingAdapter, new_customer: Any, new_order: Any
) -> None:
    customer = new_customer()
    cus = await billing.ensure_customer(customer, idempotency_key=customer.customer_id)
    order = new_order(customer)
    meta = {"correlation_id": "corr-" + order.order_ref, "customer_id": customer.customer_id}

    sub, created = await billing.create_subscription(
        order, cus, idempotency_key="sub-" + order.order_ref, metadata=meta
    )
    again, created_again = await billing.create_subscription(
        order, cus, idempotency_key="sub-" + order.order_ref, metadata=meta
    )
    assert (created, created_again) == (True, False)
    assert again == sub
    assert sub.order_ref == order.order_ref and sub.customer_id == customer.customer_id
    assert sub.billing_customer_id == cus and sub.status == "active"
    assert sub.amount == Decimal("149.70") and sub.currency == "EUR"
    assert sub.interval is BillingInterval.MONTH
    assert await billing.get_subscription_metadata(sub.subscription_id) == {
        "order_ref": order.order_ref,
        "correlation_id": "corr-" + order.order_ref,
        "customer_id": customer.customer_id,
    }
    assert await billing.find_subscription(order.order_ref, cus) == sub
    assert await billing.find_subscription("006-none", cus) is None


async def test_five_concurrent_creates_make_one_subscription(
    billing: BillingAdapter, localstripe: LocalStripeServer, new_customer: Any, new_order: Any
) -> None:
    customer = new_customer()
    cus = await billing.ensure_customer(customer, idempotency_key=customer.customer_id)
    order = new_order(customer)
    results = await asyncio.gather(
        *(
            billing.create_subscription(
                order, cus, idempotency_key=f"sub-{order.order_ref}", metadata={}
            )
            for _ in range(5)
        )
    )
    assert sorted(created for _, created in results) == [False] * 4 + [True]
    assert len({sub.subscription_id for sub, _ in results}) == 1
    async with httpx.AsyncClient(base_url=localstripe.url) as client:
        listed = await client.get(
            "/v1/subscriptions",
            params={"customer": cus, "status": "all"},
            headers={"Authorization": f"Bearer {localstripe.api_key}"},
        )
    assert [s["metadata"]["order_ref"] for s in listed.json()["data"]] == [order.order_ref]


async def test_subscription_invoice_is_paid_and_maps(
    billing: BillingAdapter, localstripe: LocalStripeServer, new_customer: Any, new_order: Any
) -> None:
    customer = new_customer()
    cus = await billing.ensure_customer(customer, idempotency_key=customer.customer_id)
    order = new_order(customer)
    sub, _ = await billing.create_subscription(
        order, cus, idempotency_key="s-" + order.order_ref, metadata={"correlation_id": "c-1"}
    )
    async with httpx.AsyncClient(base_url=localstripe.url) as client:
        raw = await client.get(
            f"/v1/subscriptions/{sub.subscription_id}",
            headers={"Authorization": f"Bearer {localstripe.api_key}"},
        )
    invoice = await billing.get_invoice(raw.json()["latest_invoice"])
    assert invoice.status == "paid"
    assert invoice.amount_due == invoice.amount_paid == Decimal("149.70")
    assert invoice.currency == "EUR"
    assert invoice.order_ref == order.order_ref
    assert invoice.customer_id == customer.customer_id
    assert invoice.subscription_id == sub.subscription_id


async def test_every_post_carries_an_idempotency_key(
    localstripe: LocalStripeServer, new_customer: Any, new_order: Any
) -> None:
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    client = httpx.AsyncClient(event_hooks={"request": [record]})
    async with (
        client,
        BillingAdapter(
            localstripe.url, localstripe.api_key, client=client, attach_test_card=True
        ) as ad,
    ):
        customer = new_customer()
        cus = await ad.ensure_customer(customer, idempotency_key="cust-key")
        fresh_sku = [OrderLine(sku=uuid.uuid4().hex, quantity=Decimal(1), unit_price=Decimal(9))]
        order = new_order(customer, lines=fresh_sku)
        await ad.create_subscription(order, cus, idempotency_key="sub-key", metadata={})
    posts = [r for r in seen if r.method == "POST"]
    assert {r.url.path for r in posts} == {"/v1/customers", "/v1/plans", "/v1/subscriptions"}
    assert all(r.headers.get("Idempotency-Key") for r in posts)
    assert {r.headers["Idempotency-Key"] for r in posts if r.url.path != "/v1/plans"} == {
        "cust-key",
        "sub-key",
    }
    # Form-encoded, nested the Stripe way.
    sub_post = next(r for r in posts if r.url.path == "/v1/subscriptions")
    body = sub_post.content.decode()
    assert "items%5B0%5D%5Bplan%5D=" in body and "metadata%5Border_ref%5D=" in body
    assert all(r.headers["Authorization"].startswith("Bearer sk_test_") for r in seen)


async def test_more_lines_than_the_platform_accepts_is_a_validation_error(
    localstripe: LocalStripeServer, new_customer: Any, new_order: Any
) -> None:
    # localstripe implements one item per subscription; the adapter says so up front.
    async with BillingAdapter(
        localstripe.url, localstripe.api_key, max_subscription_items=1
    ) as adapter:
        customer = new_customer()
        lines = [
            OrderLine(sku="A", quantity=Decimal(1), unit_price=Decimal(5)),
            OrderLine(sku="B", quantity=Decimal(1), unit_price=Decimal(6)),
        ]
        with pytest.raises(ValidationError, match="at most 1 items"):
            await adapter.create_subscription(
                new_order(customer, lines=lines), "cus_x", idempotency_key="k", metadata={}
            )


async def test_fractional_quantity_and_contradicting_metadata_are_refused(
    billing: BillingAdapter, new_customer: Any, new_order: Any
) -> None:
    customer = new_customer()
    half = [OrderLine(sku="A", quantity=Decimal("1.5"), unit_price=Decimal(5))]
    with pytest.raises(ValidationError, match="whole number"):
        await billing.create_subscription(
            new_order(customer, lines=half), "cus_x", idempotency_key="k", metadata={}
        )
    with pytest.raises(ValidationError, match="contradicts"):
        await billing.create_subscription(
            new_order(customer), "cus_x", idempotency_key="k", metadata={"order_ref": "other"}
        )


async def test_unknown_invoice_is_a_validation_error(billing: BillingAdapter) -> None:
    with pytest.raises(ValidationError):
        await billing.get_invoice("in_doesnotexist")


async def test_bad_key_is_an_auth_error(localstripe: LocalStripeServer) -> None:
    async with BillingAdapter(localstripe.url, "not-a-stripe-key") as adapter:
        with pytest.raises(AuthError):
            await adapter.get_invoice("in_x")
        assert await adapter.health() is False


# Status codes localstripe never sends, from a transport we own.
def _answering(status: int, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, json={"error": {"message": "x"}})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_429_is_rate_limited_with_retry_after() -> None:
    async with _answering(429, {"Retry-After": "7"}) as client:
        adapter = BillingAdapter("http://billing.test", "sk_test_x", client=client)
        with pytest.raises(RateLimited) as caught:
            await adapter.get_invoice("in_1")
    assert caught.value.retry_after == 7.0 and caught.value.retriable


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_downstream_unavailable(status: int) -> None:
    async with _answering(status) as client:
        adapter = BillingAdapter("http://billing.test", "sk_test_x", client=client)
        with pytest.raises(DownstreamUnavailable):
            await adapter.get_subscription_metadata("sub_1")


async def test_connection_refused_is_downstream_unavailable() -> None:
    from collector.process import free_port

    async with BillingAdapter(f"http://127.0.0.1:{free_port()}", "sk_test_x") as adapter:
        with pytest.raises(DownstreamUnavailable) as caught:
            await adapter.get_invoice("in_1")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_the_key_stays_out_of_reprs(localstripe: LocalStripeServer) -> None:
    adapter = BillingAdapter(localstripe.url, localstripe.api_key)
    assert localstripe.api_key not in repr(adapter)
    assert localstripe.api_key not in repr(localstripe)


def _recording(seen: list[httpx.Request]) -> httpx.AsyncClient:
    """A billing platform with no customers yet that records every request."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})
        return httpx.Response(200, json={"id": "cus_new", "object": "customer"})

    return httpx.AsyncClient(base_url="http://billing.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("attach", [None, True])
async def test_the_test_card_is_attached_only_when_asked(attach: bool | None) -> None:
    seen: list[httpx.Request] = []
    customer = Customer(customer_id="001XYZ", name="Acme", email="ap@acme.test")
    options = {} if attach is None else {"attach_test_card": attach}
    async with _recording(seen) as client:
        adapter = BillingAdapter("http://billing.test", "sk_live_x", client=client, **options)
        assert await adapter.ensure_customer(customer, idempotency_key="k1") == "cus_new"
    [create] = [r for r in seen if r.method == "POST"]
    form = create.content.decode()
    # By default (a real billing platform) a new customer gets no payment method.
    assert ("pm_card_visa" in form) is bool(attach)
    assert ("payment_method" in form) is bool(attach)


async def test_list_events_reads_the_events_api_from_a_created_bound_oldest_first(
    billing: BillingAdapter, new_customer: Any
) -> None:
    import time

    start = int(time.time())
    customer = new_customer()
    await billing.ensure_customer(customer, idempotency_key="ev-" + customer.customer_id)
    events = await billing.list_events(created_gte=start)
    assert events and all(e["created"] >= start for e in events)
    assert [(e["created"], e["id"]) for e in events] == sorted(
        (e["created"], e["id"]) for e in events
    )
    assert any(
        e["type"] == "customer.created"
        and e["data"]["object"]["metadata"].get("interlock_customer_id") == customer.customer_id
        for e in events
    )
    assert await billing.list_events(created_gte=start + 3600) == []


async def test_paid_invoices_are_mapped_without_a_call_per_subscription(
    localstripe: LocalStripeServer, new_customer: Any, new_order: Any
) -> None:
    import time

    gets: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path.startswith("/v1/subscriptions/"):
            gets.append(request.url.path)

    client = httpx.AsyncClient(event_hooks={"request": [count]})
    async with BillingAdapter(
        localstripe.url, localstripe.api_key, attach_test_card=True, client=client
    ) as billing:
        since = int(time.time()) - 5
        made = []
        for _ in range(3):
            customer = new_customer()
            cus = await billing.ensure_customer(customer, idempotency_key=customer.customer_id)
            order = new_order(customer)
            sub, _ = await billing.create_subscription(
                order, cus, idempotency_key="sub-" + order.order_ref, metadata={}
            )
            made.append(sub)
        gets.clear()
        paid = await billing.paid_invoices(since, int(time.time()) + 5)
        mine = {
            i.order_ref: i for i in paid if i.subscription_id in {s.subscription_id for s in made}
        }
        assert set(mine) == {s.order_ref for s in made}
        assert all(i.customer_id == s.customer_id for s in made for i in [mine[s.order_ref]])
        # The invoice lines carry the items' metadata: no subscription is read.
        assert gets == []
        # Given the subscriptions already read (reconciliation reads them first): the same.
        paid_again = await billing.paid_invoices(since, int(time.time()) + 5, subscriptions=made)
        assert {i.invoice_id for i in paid_again} == {i.invoice_id for i in paid} and gets == []
    await client.aclose()
