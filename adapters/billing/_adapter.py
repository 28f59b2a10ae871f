"""The billing platform adapter: Stripe's REST API shape over httpx.

Idempotency is ours. Every POST carries an ``Idempotency-Key`` (Stripe honours it;
localstripe ignores it), and every ``ensure_*``/``create_*`` call first looks for
what an earlier attempt may already have made, under a per-key ``asyncio.Lock``
so that concurrent calls in this process cannot both create.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from adapters._canonical import (
    BillingInterval,
    Customer,
    Invoice,
    Product,
    SalesOrder,
    Subscription,
)
from adapters._http import HttpAdapter, json_or_error, translate_transport_error
from tracing import ConflictError, IntegrationError, MappingError, ValidationError

from ._form import FormValue, encode_form, to_minor_units
from ._mapping import (
    CUSTOMER_ID_KEY,
    INTERLOCK_CUSTOMER_KEY,
    ORDER_REF_KEY,
    invoice_from_stripe,
    invoice_metadata,
    subscription_from_stripe,
)

__all__ = ["BillingAdapter"]

log = logging.getLogger(__name__)

SYSTEM = "billing"
PAGE_SIZE = 100
# Stripe's documented limits.
MAX_SUBSCRIPTION_ITEMS = 20
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# A test card that localstripe and Stripe test mode both accept and charge.
TEST_PAYMENT_METHOD = "pm_card_visa"


class BillingAdapter(HttpAdapter):
    """Async client of a Stripe-shaped billing platform; an async context manager.

    ``client`` lets tests pass an ``httpx.AsyncClient`` (its base URL and
    headers are then the caller's); otherwise one is made and closed by
    ``aclose()``. ``max_subscription_items`` is Stripe's 20 by default;
    localstripe implements one item per subscription, so pass 1 there to get a
    ``ValidationError`` instead of its HTTP 500. ``attach_test_card`` (off by
    default) gives new customers Stripe's ``pm_card_visa`` test card so invoices are
    paid: for test mode and localstripe only, so only the demo landscape turns it on.
    ``page_size`` is the list page size (Stripe's max 100).
    ``bundle_lines``: an order with more lines than the platform takes items is
    billed as one plan for the order's total instead of being refused.
    """

    #: The system this adapter speaks to (collector.SystemAdapter).
    system = SYSTEM

    def __init__(
        self,
        api_base: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        max_subscription_items: int = MAX_SUBSCRIPTION_ITEMS,
        attach_test_card: bool = False,
        page_size: int = PAGE_SIZE,
        bundle_lines: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        self.api_base = api_base.rstrip("/")
        super().__init__(client, base_url=self.api_base, timeout=timeout)
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.max_subscription_items = max_subscription_items
        self.attach_test_card = attach_test_card
        self.bundle_lines = bundle_lines
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}")
        self.page_size = page_size
        # Locks live as long as someone waits on them; no unbounded growth.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _repr_args(self) -> str:
        return f"api_base={self.api_base!r}"  # never the key

    # -- transport ---------------------------------------------------------

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, FormValue] | None = None,
        data: Mapping[str, FormValue] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = dict(self._auth)
        if method == "POST":
            if not idempotency_key:
                raise ValueError("every POST needs an idempotency key")
            headers["Idempotency-Key"] = _bounded_key(idempotency_key)
        try:
            response = await self._client.request(
                method,
                self.api_base + path,
                params=dict(encode_form(params)) if params else None,
                data=dict(encode_form(data)) if data else None,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, system=SYSTEM) from exc
        return json_or_error(response, system=SYSTEM)

    async def _list(self, path: str, params: Mapping[str, FormValue]) -> AsyncIterator[Any]:
        """Every object of a list endpoint, paging with ``starting_after``."""
        after: str | None = None
        while True:
            page = await self._request(
                "GET", path, params={**params, "limit": self.page_size, "starting_after": after}
            )
            data = page.get("data") or []
            for obj in data:
                yield obj
            if not page.get("has_more") or not data:
                return
            after = data[-1]["id"]

    # -- API -----------------------------------------------------------------

    async def health(self) -> bool:
        """True when the platform answers an authenticated read."""
        try:
            await self._request("GET", "/v1/customers", params={"limit": 1})
        except IntegrationError as exc:
            log.warning("billing health check failed: %s", type(exc).__name__)
            return False
        return True

    async def _find_customer(self, customer_id: str) -> str | None:
        async for obj in self._list("/v1/customers", {}):
            if (obj.get("metadata") or {}).get(INTERLOCK_CUSTOMER_KEY) == customer_id:
                return str(obj["id"])
        return None

    async def ensure_customer(self, customer: Customer, *, idempotency_key: str) -> str:
        """The billing customer ID for ``customer``, created (with a test card) if missing.

        Found by ``metadata.interlock_customer_id`` (Stripe-shaped platforms
        without search are listed and filtered).
        """
        async with self._lock("customer:" + customer.customer_id):
            existing = await self._find_customer(customer.customer_id)
            if existing is not None:
                return existing
            data: dict[str, FormValue] = {
                "name": customer.name,
                "email": customer.email,
                "phone": customer.phone,
                "metadata": {INTERLOCK_CUSTOMER_KEY: customer.customer_id},
            }
            if self.attach_test_card:
                # Stripe and localstripe both turn this test ID into a card, attach it
                # and charge it for invoices: subscriptions then start paid.
                data["payment_method"] = TEST_PAYMENT_METHOD
                data["invoice_settings"] = {"default_payment_method": TEST_PAYMENT_METHOD}
            created = await self._request(
                "POST", "/v1/customers", data=data, idempotency_key=idempotency_key
            )
            return str(created["id"])

    async def find_customer(self, customer_id: str) -> str | None:
        """The billing customer ID whose metadata names ``customer_id``, if any."""
        return await self._find_customer(customer_id)

    async def customer_record(self, billing_customer_id: str) -> dict[str, Any]:
        """The customer object as billing holds it (name, email, metadata, ...)."""
        found: dict[str, Any] = await self._request("GET", f"/v1/customers/{billing_customer_id}")
        return found

    async def update_customer(
        self, billing_customer_id: str, data: Mapping[str, FormValue], *, idempotency_key: str
    ) -> dict[str, Any]:
        """``POST /v1/customers/{id}`` with ``data`` (metadata keys merge, as Stripe's do)."""
        updated: dict[str, Any] = await self._request(
            "POST",
            f"/v1/customers/{billing_customer_id}",
            data=data,
            idempotency_key=idempotency_key,
        )
        return updated

    async def ensure_plan(
        self, sku: str, unit_amount: Decimal, currency: str, interval: BillingInterval
    ) -> str:
        """A deterministic plan ID for (SKU, price, currency, interval); created if missing."""
        minor = to_minor_units(unit_amount, currency)
        plan_id = plan_id_for(sku, minor, currency, interval)
        async with self._lock("plan:" + plan_id):
            try:
                await self._request("GET", f"/v1/plans/{plan_id}")
                return plan_id
            except ValidationError:  # 404: not made yet
                pass
            data: dict[str, FormValue] = {
                "id": plan_id,
                "amount": minor,
                "currency": currency.lower(),
                "interval": interval.value,
                "product": {"name": sku, "metadata": {"sku": sku}},
                "metadata": {"sku": sku},
            }
            # ConflictError: another process made it between our read and write; the ID
            # fixes the terms, so theirs is ours.
            with contextlib.suppress(ConflictError):
                await self._request("POST", "/v1/plans", data=data, idempotency_key=plan_id)
            return plan_id

    async def sync_product(
        self, product: Product, interval: BillingInterval = BillingInterval.MONTH
    ) -> tuple[str, list[str]]:
        """The ERP's product as a billing product (ID ``product_id_for(sku)``) and one plan
        per price version (billing has no prices: plans, whose amounts are fixed, so a new
        version is a new plan). Returns ``(product ID, plan IDs)``; idempotent by the IDs.
        A retired product is made inactive; its plans stay for running subscriptions.
        """
        product_id = product_id_for(product.sku)
        async with self._lock("product:" + product_id):
            fields: dict[str, FormValue] = {
                "name": product.name,
                "active": "true" if product.active else "false",
                "metadata": {"sku": product.sku, "catalog_version": product.catalog_version},
            }
            try:
                await self._request("GET", f"/v1/products/{product_id}")
                exists = True
            except ValidationError:  # 404: not made yet (as ensure_plan reads it)
                exists = False
            if exists:
                await self._request(
                    "POST",
                    f"/v1/products/{product_id}",
                    data=fields,
                    idempotency_key=f"product:{product_id}:{product.catalog_version}",
                )
            else:
                # ConflictError: another process made it first; the update below is theirs.
                with contextlib.suppress(ConflictError):
                    await self._request(
                        "POST",
                        "/v1/products",
                        data={"id": product_id, "type": "service", **fields},
                        idempotency_key=f"product:{product_id}",
                    )
        plans = []
        for price in product.prices:
            minor = to_minor_units(price.unit_price, price.currency)
            plan_id = plan_id_for(product.sku, minor, price.currency, interval)
            async with self._lock("plan:" + plan_id):
                try:
                    await self._request("GET", f"/v1/plans/{plan_id}")
                except ValidationError:  # 404: not made yet
                    data: dict[str, FormValue] = {
                        "id": plan_id,
                        "amount": minor,
                        "currency": price.currency.lower(),
                        "interval": interval.value,
                        "product": product_id,
                        "metadata": {
                            "sku": product.sku,
                            "price_version": price.version,
                            "effective_from": _iso(price.effective_from),
                            "effective_to": _iso(price.effective_to),
                        },
                    }
                    with contextlib.suppress(ConflictError):
                        await self._request("POST", "/v1/plans", data=data, idempotency_key=plan_id)
            plans.append(plan_id)
        return product_id, plans

    async def billing_product(self, sku: str) -> dict[str, Any] | None:
        """The billing product of a SKU with its plans (``{"product": …, "plans": […]}``)."""
        product_id = product_id_for(sku)
        try:
            found = await self._request("GET", f"/v1/products/{product_id}")
        except ValidationError:  # 404
            return None
        plans = [p async for p in self._list("/v1/plans", {}) if p.get("product") == product_id]
        return {"product": found, "plans": plans}

    async def _find_subscription_raw(
        self, order_ref: str, billing_customer_id: str
    ) -> dict[str, Any] | None:
        params: dict[str, FormValue] = {"customer": billing_customer_id, "status": "all"}
        async for obj in self._list("/v1/subscriptions", params):
            if (obj.get("metadata") or {}).get(ORDER_REF_KEY) == order_ref:
                return dict(obj)
        return None

    async def find_subscription(
        self, order_ref: str, billing_customer_id: str
    ) -> Subscription | None:
        """The subscription made for ``order_ref`` (any status, canceled included)."""
        found = await self._find_subscription_raw(order_ref, billing_customer_id)
        return subscription_from_stripe(found) if found else None

    async def create_subscription(
        self,
        order: SalesOrder,
        billing_customer_id: str,
        *,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> tuple[Subscription, bool]:
        """Subscribe the customer to one item per order line; ``(subscription, created)``.

        Idempotent by (customer, ``metadata.order_ref``): a repeat returns the
        existing subscription and ``False``.
        """
        lines = [(line.sku, line.unit_price, line.quantity) for line in order.lines]
        if len(lines) > self.max_subscription_items and self.bundle_lines:
            # One bundled plan for the whole contract, as many billing set-ups price a deal.
            lines = [(f"BUNDLE-{order.order_ref}", order.total, Decimal(1))]
        if len(lines) > self.max_subscription_items:
            raise ValidationError(
                f"order {order.order_ref} has {len(order.lines)} lines; the billing platform "
                f"accepts at most {self.max_subscription_items} items per subscription",
                field="lines",
                system=SYSTEM,
            )
        full_metadata = _subscription_metadata(order, metadata)
        quantities = [_whole_quantity(qty, sku) for sku, _, qty in lines]
        async with self._lock(f"subscription:{billing_customer_id}:{order.order_ref}"):
            existing = await self._find_subscription_raw(order.order_ref, billing_customer_id)
            if existing is not None:
                return subscription_from_stripe(existing), False
            items: list[FormValue] = []
            for (sku, unit_price, _), quantity in zip(lines, quantities, strict=True):
                plan = await self.ensure_plan(
                    sku, unit_price, order.currency, order.billing_interval
                )
                # Item metadata reaches invoice lines, so invoice webhooks can be mapped
                # without another call.
                items.append({"plan": plan, "quantity": quantity, "metadata": full_metadata})
            created = await self._request(
                "POST",
                "/v1/subscriptions",
                data={"customer": billing_customer_id, "items": items, "metadata": full_metadata},
                idempotency_key=idempotency_key,
            )
            return subscription_from_stripe(created), True

    async def list_events(self, *, created_gte: int) -> list[dict[str, Any]]:
        """Every event created at or after ``created_gte`` (unix seconds), oldest first.

        The catch-up path for webhooks that never arrived. Stripe lists newest
        first and localstripe oldest first; the result is sorted either way
        (by ``created``, then ID).
        """
        events = [
            dict(obj)
            async for obj in self._list("/v1/events", {"created": {"gte": created_gte}})
            if isinstance(obj, Mapping)
        ]
        events.sort(key=lambda e: (_int_or_zero(e.get("created")), str(e.get("id"))))
        return events

    async def subscriptions(self) -> list[Subscription]:
        """Every subscription Interlock made (any status, canceled included), paged.

        One whose metadata lacks the order or customer (made by hand in billing) is
        left out: reconciliation reads subscriptions by the order they serve.
        """
        found: list[Subscription] = []
        async for obj in self._list("/v1/subscriptions", {"status": "all"}):
            metadata = (obj.get("metadata") or {}) if isinstance(obj, Mapping) else {}
            if ORDER_REF_KEY in metadata and CUSTOMER_ID_KEY in metadata:
                found.append(subscription_from_stripe(obj))
        return found

    async def paid_invoices(
        self, since: int, until: int, *, subscriptions: Iterable[Subscription] = ()
    ) -> list[Invoice]:
        """Paid invoices created in ``[since, until)`` (unix seconds), paged, each mapped
        to its order: by the Interlock keys the invoice carries (its lines carry the
        subscription items' metadata), else by ``subscriptions`` already read, else by
        reading its subscription (once per subscription). One call per invoice would
        make a month's reconciliation as many round trips as it has invoices."""
        metadata: dict[str, dict[str, str]] = {
            s.subscription_id: {ORDER_REF_KEY: s.order_ref, CUSTOMER_ID_KEY: s.customer_id}
            for s in subscriptions
        }
        found: list[Invoice] = []
        async for inv in self._list("/v1/invoices", {}):
            if not isinstance(inv, Mapping) or inv.get("status") != "paid":
                continue
            if not since <= _int_or_zero(inv.get("created")) < until:
                continue
            sub = str(inv.get("subscription") or "")
            if sub and sub not in metadata and not _maps_itself(inv):
                metadata[sub] = await self.get_subscription_metadata(sub)
            try:
                found.append(invoice_from_stripe(inv, extra_metadata=metadata.get(sub, {})))
            except MappingError:
                log.warning("paid invoice %s is not Interlock's; left out", inv.get("id"))
        return found

    async def customers_by_interlock_id(self) -> dict[str, list[str]]:
        """Billing customer IDs by the Interlock customer ID in their metadata."""
        out: dict[str, list[str]] = {}
        async for cus in self._list("/v1/customers", {}):
            key = ((cus.get("metadata") or {}) if isinstance(cus, Mapping) else {}).get(
                INTERLOCK_CUSTOMER_KEY
            )
            if key:
                out.setdefault(str(key), []).append(str(cus["id"]))
        return out

    async def get_subscription_metadata(self, subscription_id: str) -> dict[str, str]:
        sub = await self._request("GET", f"/v1/subscriptions/{subscription_id}")
        return {str(k): str(v) for k, v in (sub.get("metadata") or {}).items()}

    async def get_invoice(self, invoice_id: str) -> Invoice:
        """The canonical invoice; ``order_ref`` and customer come from the subscription."""
        inv = await self._request("GET", f"/v1/invoices/{invoice_id}")
        extra: dict[str, str] = {}
        if inv.get("subscription"):
            extra = await self.get_subscription_metadata(str(inv["subscription"]))
        if not extra.get(CUSTOMER_ID_KEY) and inv.get("customer"):
            # An invoice outside a subscription: the customer's own link to Interlock.
            cus = await self._request("GET", f"/v1/customers/{inv['customer']}")
            interlock_id = (cus.get("metadata") or {}).get(INTERLOCK_CUSTOMER_KEY)
            if interlock_id:
                extra[CUSTOMER_ID_KEY] = str(interlock_id)
        return invoice_from_stripe(inv, extra_metadata=extra)


def product_id_for(sku: str) -> str:
    """``il_prod_<sku slug>_<hash>``: the billing product of a catalog SKU."""
    slug = re.sub(r"[^a-z0-9]+", "-", sku.lower()).strip("-")[:40] or "sku"
    return f"il_prod_{slug}_{hashlib.sha256(sku.encode()).hexdigest()[:10]}"


def _iso(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def plan_id_for(sku: str, unit_amount_minor: int, currency: str, interval: BillingInterval) -> str:
    """``il_<sku slug>_<amount><currency>_<interval>_<hash>``: stable and URL-safe.

    The hash covers the exact SKU, so two SKUs with the same slug never share a plan.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", sku.lower()).strip("-")[:40] or "sku"
    digest = hashlib.sha256(
        f"{sku}\x00{unit_amount_minor}\x00{currency.lower()}\x00{interval.value}".encode()
    ).hexdigest()[:10]
    return f"il_{slug}_{unit_amount_minor}{currency.lower()}_{interval.value}_{digest}"


def _int_or_zero(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bounded_key(key: str) -> str:
    if len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        return key
    # Stripe caps keys at 255 characters; a digest keeps long keys distinct.
    return key[:190] + ":" + hashlib.sha256(key.encode()).hexdigest()


def _whole_quantity(quantity: Decimal, sku: str) -> int:
    if quantity != quantity.to_integral_value():
        raise ValidationError(
            f"line {sku}: quantity {quantity} is not a whole number of units",
            field="quantity",
            system=SYSTEM,
        )
    return int(quantity)


def _maps_itself(inv: Mapping[str, Any]) -> bool:
    """Whether the invoice names its order and customer without its subscription."""
    try:
        keys = invoice_metadata(inv)
    except MappingError:
        return False  # mapped (and refused) below, with the reason
    return ORDER_REF_KEY in keys and CUSTOMER_ID_KEY in keys


def _subscription_metadata(order: SalesOrder, metadata: Mapping[str, str]) -> dict[str, str]:
    ours = {ORDER_REF_KEY: order.order_ref, CUSTOMER_ID_KEY: order.customer.customer_id}
    for key, value in ours.items():
        if key in metadata and metadata[key] != value:
            raise ValidationError(
                f"metadata {key}={metadata[key]!r} contradicts the order ({value!r})",
                field=f"metadata.{key}",
                system=SYSTEM,
            )
    merged = {**metadata, **ours}
    if len(merged) > MAX_METADATA_KEYS:
        raise ValidationError(f"more than {MAX_METADATA_KEYS} metadata keys", field="metadata")
    for key, value in merged.items():
        if len(key) > MAX_METADATA_KEY_LENGTH or len(value) > MAX_METADATA_VALUE_LENGTH:
            raise ValidationError(
                f"metadata {key[:40]!r}: keys up to {MAX_METADATA_KEY_LENGTH} and values up to "
                f"{MAX_METADATA_VALUE_LENGTH} characters",
                field="metadata",
            )
    return merged
