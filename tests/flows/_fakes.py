"""In-memory stand-ins for the four systems, for flow unit tests only.

The end-to-end tests run the same flow against real Tryton, localstripe and the
sandboxes; these fakes keep the unit tests about the flow's own logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from adapters import (
    BillingInterval,
    Customer,
    Invoice,
    OrderLine,
    SalesOrder,
    Subscription,
    SupportCase,
)
from tracing import DownstreamUnavailable, InterlockError, RateLimited


def order(
    ref: str = "006A", *, sku: str = "PLAT-PRO", qty: int = 2, currency: str = "USD"
) -> SalesOrder:
    return SalesOrder(
        order_ref=ref,
        customer=Customer(customer_id="001A", name="Acme Corp", email="jane@acme.example"),
        currency=currency,
        lines=[OrderLine(sku=sku, quantity=Decimal(qty), unit_price=Decimal("199"))],
    )


@dataclass
class Sale:
    id: int
    number: str | None
    reference: str
    state: str
    party_id: int
    total: Decimal


@dataclass
class FakeCrm:
    orders: dict[str, SalesOrder] = field(default_factory=dict)
    errors: dict[str, InterlockError] = field(default_factory=dict)

    #: (opportunity, ERP state) as published, in order.
    statuses: list[tuple[str, str]] = field(default_factory=list)

    async def load_order(self, opportunity_id: str) -> SalesOrder:
        if opportunity_id in self.errors:
            raise self.errors[opportunity_id]
        return self.orders[opportunity_id]

    async def publish_order_status(self, opportunity_id: str, status: str) -> None:
        self.statuses.append((opportunity_id, status))


@dataclass
class FakeErp:
    sales: dict[str, Sale] = field(default_factory=dict)
    invoices: dict[str, Sale] = field(default_factory=dict)
    fail_times: int = 0
    calls: int = 0
    #: An outage: every call fails until it is set back to False.
    down: bool = False

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.down:
            raise DownstreamUnavailable("ERP unavailable", system="erp", status=503)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise DownstreamUnavailable("ERP unavailable", system="erp", status=503)

    async def ensure_party(self, customer: Customer) -> int:
        return 7

    async def find_sale(self, reference: str):
        return self.sales.get(reference)

    async def create_sale(self, order: SalesOrder, *, idempotency_key: str):
        self._maybe_fail()
        if order.order_ref in self.sales:
            return self.sales[order.order_ref], False
        sale = Sale(len(self.sales) + 1, None, order.order_ref, "draft", 7, order.total)
        self.sales[order.order_ref] = sale
        return sale, True

    async def confirm_sale(self, sale_id: int, *, override_credit: bool = False):
        self._maybe_fail()
        sale = next(s for s in self.sales.values() if s.id == sale_id)
        sale.state, sale.number = "confirmed", f"SO{sale.id:04d}"
        return sale

    async def find_invoice(self, reference: str):
        return self.invoices.get(reference)

    async def post_invoice(
        self, invoice: Invoice, *, party_id: int, description: str, idempotency_key: str
    ):
        self._maybe_fail()
        if invoice.invoice_id in self.invoices:
            return self.invoices[invoice.invoice_id], False
        posted = Sale(
            len(self.invoices) + 1,
            "INV1",
            invoice.invoice_id,
            "posted",
            party_id,
            invoice.amount_due,
        )
        self.invoices[invoice.invoice_id] = posted
        return posted, True


@dataclass
class FakeBilling:
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    #: A 429 storm: every subscription call is refused until it is set back to False.
    rate_limited: bool = False

    async def ensure_customer(self, customer: Customer, *, idempotency_key: str) -> str:
        return "cus_1"

    async def find_subscription(self, order_ref: str, billing_customer_id: str):
        return self.subscriptions.get(order_ref)

    async def create_subscription(self, order, billing_customer_id, *, idempotency_key, metadata):
        if self.rate_limited:
            raise RateLimited("429 Too Many Requests", system="billing", retry_after=0.0)
        if order.order_ref in self.subscriptions:
            return self.subscriptions[order.order_ref], False
        sub = Subscription(
            subscription_id=f"sub_{len(self.subscriptions) + 1}",
            customer_id=order.customer.customer_id,
            billing_customer_id=billing_customer_id,
            order_ref=order.order_ref,
            status="active",
            currency=order.currency,
            amount=order.total,
            interval=BillingInterval.MONTH,
        )
        self.subscriptions[order.order_ref] = sub
        self.metadata[sub.subscription_id] = dict(metadata)
        return sub, True

    async def get_subscription_metadata(self, subscription_id: str) -> dict[str, str]:
        return self.metadata[subscription_id]

    async def get_invoice(self, invoice_id: str) -> Invoice:
        # An invoice ``in_<subscription id>`` belongs to that subscription.
        by_id = {s.subscription_id: s for s in self.subscriptions.values()}
        sub = by_id.get(invoice_id.removeprefix("in_")) or next(iter(self.subscriptions.values()))
        return Invoice(
            invoice_id=invoice_id,
            customer_id=sub.billing_customer_id,
            order_ref=sub.order_ref,
            subscription_id=sub.subscription_id,
            currency="USD",
            amount_due=sub.amount,
            amount_paid=sub.amount,
            status="paid",
        )


@dataclass
class FakeSupport:
    tickets: dict[str, SupportCase] = field(default_factory=dict)
    system: str = "support"

    async def ensure_organization(self, customer: Customer, *, idempotency_key: str) -> str:
        return "42"

    async def activate_entitlement(self, organization_id, order, *, idempotency_key):
        if idempotency_key not in self.tickets:
            self.tickets[idempotency_key] = SupportCase(
                case_id=str(len(self.tickets) + 1),
                customer_id=order.customer.customer_id,
                subject="Welcome",
                status="open",
                organization_id=int(organization_id),
            )
        return self.tickets[idempotency_key]
