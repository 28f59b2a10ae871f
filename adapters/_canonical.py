"""The canonical business objects, version ``CANONICAL_VERSION``.

Every adapter maps its system's payloads to and from these; no flow touches a
vendor payload. Money is ``Decimal`` with an ISO 4217 currency code.

Each object carries its schema version (``schema_version``); the control API
publishes them as JSON Schema (``GET /api/v1/schemas``) and the tests fail a change
that alters a published version or breaks a reader of the previous one
(``tests/core/schemas/``). A new version that renames or reshapes a field ships an
upcaster from the previous one in ``schema_upcasters`` (``{old_version: function}``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CANONICAL_OBJECTS",
    "CANONICAL_VERSION",
    "BillingInterval",
    "CreditMemo",
    "Customer",
    "Invoice",
    "OrderLine",
    "Payment",
    "Product",
    "ProductPrice",
    "SalesOrder",
    "Subscription",
    "SupportCase",
]

CANONICAL_VERSION = 1


class _Canonical(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The published schema version of this object (``tracing.Schema.of``).
    schema_version: ClassVar[int] = CANONICAL_VERSION
    #: ``{version: upcast}``: turns a document of that version into the next one.
    schema_upcasters: ClassVar[dict[int, Any]] = {}


def _currency(value: str) -> str:
    if len(value) != 3 or not value.isalpha():
        raise ValueError(f"currency must be an ISO 4217 code, got {value!r}")
    return value.upper()


class BillingInterval(StrEnum):
    MONTH = "month"
    YEAR = "year"


class Customer(_Canonical):
    """A customer account. The CRM owns name and hierarchy; the ERP owns credit."""

    customer_id: str = Field(description="Interlock's ID: the CRM account ID")
    name: str = Field(min_length=1)
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    crm_account_id: str | None = None
    erp_party_id: int | None = None
    billing_customer_id: str | None = None
    support_organization_id: int | None = None
    parent_customer_id: str | None = None


class OrderLine(_Canonical):
    sku: str = Field(min_length=1)
    description: str = ""
    quantity: Decimal = Field(gt=0)
    unit_price: Decimal = Field(ge=0)

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price


class SalesOrder(_Canonical):
    """A won deal on its way to the ERP: the opportunity ID is its natural key."""

    order_ref: str = Field(min_length=1, description="CRM opportunity ID")
    customer: Customer
    currency: str
    lines: list[OrderLine] = Field(min_length=1)
    billing_interval: BillingInterval = BillingInterval.MONTH
    payment_terms: str = "NET30"
    close_date: date | None = None
    erp_order_id: int | None = None
    erp_order_number: str | None = None

    _check_currency = field_validator("currency")(_currency)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


class Subscription(_Canonical):
    subscription_id: str
    customer_id: str
    billing_customer_id: str
    order_ref: str
    status: str
    currency: str
    amount: Decimal
    interval: BillingInterval


class Invoice(_Canonical):
    invoice_id: str = Field(description="the billing platform's invoice ID")
    customer_id: str
    order_ref: str | None = None
    subscription_id: str | None = None
    currency: str
    amount_due: Decimal
    amount_paid: Decimal = Decimal(0)
    status: str
    number: str | None = None
    erp_invoice_id: int | None = None

    _check_currency = field_validator("currency")(_currency)


class Payment(_Canonical):
    payment_id: str
    invoice_id: str
    customer_id: str
    currency: str
    amount: Decimal


class SupportCase(_Canonical):
    case_id: str
    customer_id: str
    subject: str
    status: str
    priority: str = "normal"
    organization_id: int | None = None


class CreditMemo(_Canonical):
    memo_id: str
    invoice_id: str
    customer_id: str
    currency: str
    amount: Decimal
    reason: str


class ProductPrice(_Canonical):
    """One version of a product's price, in force from ``effective_from`` to
    ``effective_to`` (both inclusive; ``None`` is open-ended). The ERP owns it."""

    version: str = Field(min_length=1, description="the ERP's ID of this price version")
    unit_price: Decimal = Field(ge=0)
    currency: str
    effective_from: date | None = None
    effective_to: date | None = None

    _check_currency = field_validator("currency")(_currency)

    def in_force(self, on: date) -> bool:
        """Whether this version prices an order dated ``on``."""
        return (self.effective_from is None or self.effective_from <= on) and (
            self.effective_to is None or on <= self.effective_to
        )


class Product(_Canonical):
    """A product of the ERP's catalog with its dated prices, in the ERP's matching
    order (the first version in force on a date is the price on that date)."""

    sku: str = Field(min_length=1)
    name: str = Field(min_length=1)
    active: bool = True
    prices: list[ProductPrice] = Field(default_factory=list)
    catalog_version: str = Field(
        default="", description="the ERP's last write to the product or its prices"
    )

    def price_on(self, on: date) -> ProductPrice | None:
        """The price version in force on ``on``; ``None`` when none is."""
        return next((p for p in self.prices if p.in_force(on)), None)

    def retired_on(self, on: date) -> bool:
        """Inactive, or every price version ended before ``on``."""
        if not self.active:
            return True
        return bool(self.prices) and all(
            p.effective_to is not None and p.effective_to < on for p in self.prices
        )


#: Every canonical object a document travels as (their schemas are governed).
CANONICAL_OBJECTS: tuple[type[_Canonical], ...] = (
    Customer,
    OrderLine,
    SalesOrder,
    Subscription,
    Invoice,
    Payment,
    SupportCase,
    CreditMemo,
    ProductPrice,
    Product,
)
