"""What the flows need from each system, as protocols the real adapters satisfy.

Flows depend on these, never on a vendor payload or a concrete client, so a
test can hand in any object with the same methods.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from .._canonical import Customer, Invoice, SalesOrder, Subscription, SupportCase

__all__ = ["BillingPort", "CrmPort", "ErpInvoiceRef", "ErpPort", "ErpSaleRef", "SupportPort"]


class ErpSaleRef(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def number(self) -> str | None: ...
    @property
    def reference(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def party_id(self) -> int: ...
    @property
    def total(self) -> Decimal: ...


class ErpInvoiceRef(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def number(self) -> str | None: ...
    @property
    def reference(self) -> str: ...
    @property
    def state(self) -> str: ...


class CrmPort(Protocol):
    async def load_order(self, opportunity_id: str) -> SalesOrder: ...
    async def publish_order_status(self, opportunity_id: str, status: str) -> None: ...
    async def show_credit_hold(
        self,
        opportunity_id: str,
        account_id: str,
        *,
        held: bool,
        reason: str | None = None,
        exposure: Decimal | None = None,
        limit: Decimal | None = None,
    ) -> None: ...
    async def create_task(
        self,
        *,
        what_id: str,
        subject: str,
        idempotency_key: str,
        description: str | None = None,
        priority: str = "Normal",
        status: str = "Not Started",
    ) -> Any: ...


class ErpPort(Protocol):
    async def ensure_party(self, customer: Customer) -> int: ...
    async def find_sale(self, reference: str) -> Any: ...
    async def create_sale(self, order: SalesOrder, *, idempotency_key: str) -> tuple[Any, bool]: ...
    async def confirm_sale(self, sale_id: int, *, override_credit: bool = False) -> Any: ...
    async def credit_position(self, party_id: int) -> tuple[Decimal, Decimal | None]: ...
    async def find_invoice(self, reference: str) -> Any: ...
    async def post_invoice(
        self, invoice: Invoice, *, party_id: int, description: str, idempotency_key: str
    ) -> tuple[Any, bool]: ...


class BillingPort(Protocol):
    async def ensure_customer(self, customer: Customer, *, idempotency_key: str) -> str: ...
    async def find_subscription(
        self, order_ref: str, billing_customer_id: str
    ) -> Subscription | None: ...
    async def create_subscription(
        self,
        order: SalesOrder,
        billing_customer_id: str,
        *,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> tuple[Subscription, bool]: ...
    async def get_invoice(self, invoice_id: str) -> Invoice: ...


class SupportPort(Protocol):
    """A support desk (Zendesk, ServiceNow). Its organization IDs are strings at this
    boundary whatever the desk keeps (Zendesk numbers, ServiceNow sys_ids); ``system``
    is the name its steps are recorded against in the lineage."""

    @property
    def system(self) -> str: ...
    async def ensure_organization(self, customer: Customer, *, idempotency_key: str) -> str: ...
    async def activate_entitlement(
        self, organization_id: str, order: SalesOrder, *, idempotency_key: str
    ) -> SupportCase: ...
    async def hold_cases(
        self, organization_id: str, *, note: str, idempotency_key: str
    ) -> dict[str, str]: ...
    async def release_cases(
        self, organization_id: str, *, note: str, idempotency_key: str
    ) -> list[str]: ...
