"""Order pre-validation against the catalog and the ERP's master data.

Before quote-to-cash writes an order to the ERP, each check below may refuse it with a
named reason (the dead letter's ``error_type``), naming the line or field, and the
expected and the given value:

- ``IncompleteAccount``: the customer's account master lacks a field billing and tax
  need (name, country, e-mail for invoices);
- ``TaxNotConfigured``: no tax is configured in the ERP for the customer's country;
- ``UnknownBillingTerms``: the payment terms or billing interval are not the ERP's or
  billing's;
- ``UnknownProduct``, ``RetiredProduct``, ``PriceMismatch``: a line's product is not
  in the catalog, retired on the order's effective date, or priced differently from the
  catalog version in force on that date (contract-effective dating: the order's
  ``close_date``, else today).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Protocol

from tracing import MappingError, ValidationError

from .._canonical import BillingInterval, Product, SalesOrder

__all__ = [
    "DEFAULT_TAXES",
    "CatalogChecks",
    "CatalogReader",
    "IncompleteAccount",
    "PriceMismatch",
    "RetiredProduct",
    "TaxNotConfigured",
    "UnknownBillingTerms",
    "UnknownProduct",
    "effective_date",
]

#: Country -> the ERP tax an order to it needs (the demo ERP's taxes).
DEFAULT_TAXES: Mapping[str, str] = {
    "US": "US sales tax",
    "CA": "CA GST 5%",
    "DE": "DE VAT 19%",
    "GB": "GB VAT 20%",
    "FR": "FR VAT 20%",
    "NL": "NL VAT 21%",
    "SE": "SE VAT 25%",
}


class IncompleteAccount(ValidationError):
    """The customer's account master lacks a field the order needs."""


class TaxNotConfigured(ValidationError):
    """No tax is configured for the customer's country."""


class UnknownBillingTerms(ValidationError):
    """The order's payment terms or billing interval are unknown."""


class UnknownProduct(MappingError):
    """A line's SKU is not in the ERP's catalog."""


class RetiredProduct(ValidationError):
    """A line's product is retired on the order's effective date."""


class PriceMismatch(ValidationError):
    """A line's price differs from the catalog version in force on the order's date."""

    def __init__(self, message: str, *, field: str, expected: str, given: str, version: str):
        super().__init__(message, field=field)
        self.expected, self.given, self.version = expected, given, version


class CatalogReader(Protocol):
    async def products(self, skus: list[str] | None = None) -> dict[str, Product]: ...
    async def has_tax(self, name: str) -> bool: ...
    async def has_payment_term(self, name: str) -> bool: ...


def effective_date(order: SalesOrder, today: date) -> date:
    """The date whose catalog version prices the order: its contract (close) date."""
    return order.close_date or today


class CatalogChecks:
    """The checks, as one ``check(order)`` coroutine quote-to-cash calls before it
    writes the order (``collector.Host.shared("quote_to_cash.prevalidation")``)."""

    def __init__(
        self,
        catalog: CatalogReader,
        *,
        taxes: Mapping[str, str] = DEFAULT_TAXES,
        intervals: frozenset[BillingInterval] = frozenset(BillingInterval),
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._catalog = catalog
        self._taxes = dict(taxes)
        self._intervals = intervals
        self._today = today

    async def check(self, order: SalesOrder) -> None:
        """Raise the first failed check's named error; return when the order passes."""
        await self._account(order)
        await self._terms(order)
        await self._lines(order)

    async def _account(self, order: SalesOrder) -> None:
        customer = order.customer
        for name, value in (
            ("name", customer.name.strip()),
            ("country", customer.country),
            ("email", customer.email),
        ):
            if not value:
                raise IncompleteAccount(
                    f"account {customer.customer_id} has no {name} in its master record",
                    field=f"customer.{name}",
                )
        country = str(customer.country).strip().upper()
        tax = self._taxes.get(country)
        if tax is None or not await self._catalog.has_tax(tax):
            where = f"tax {tax!r} is not in the ERP" if tax else "no tax is mapped for it"
            raise TaxNotConfigured(
                f"no tax configuration for country {country} ({where})",
                field="customer.country",
            )

    async def _terms(self, order: SalesOrder) -> None:
        if not await self._catalog.has_payment_term(order.payment_terms):
            raise UnknownBillingTerms(
                f"payment terms {order.payment_terms!r} are not known to the ERP",
                field="payment_terms",
            )
        if order.billing_interval not in self._intervals:
            raise UnknownBillingTerms(
                f"billing interval {order.billing_interval.value!r} is not billed "
                f"(known: {sorted(i.value for i in self._intervals)})",
                field="billing_interval",
            )

    async def _lines(self, order: SalesOrder) -> None:
        on = effective_date(order, self._today())
        products = await self._catalog.products(sorted({ln.sku for ln in order.lines}))
        for index, line in enumerate(order.lines):
            where = f"line {index + 1} ({line.sku})"
            product = products.get(line.sku)
            if product is None:
                raise UnknownProduct(
                    f"{where}: product {line.sku!r} is not in the ERP catalog",
                    field=f"lines[{index}].sku",
                )
            if product.retired_on(on):
                raise RetiredProduct(
                    f"{where}: product {line.sku!r} is retired on {on.isoformat()} "
                    f"(expected an active product, given {line.sku!r})",
                    field=f"lines[{index}].sku",
                )
            price = product.price_on(on)
            if price is None:
                raise RetiredProduct(
                    f"{where}: product {line.sku!r} has no price in force on {on.isoformat()}",
                    field=f"lines[{index}].unit_price",
                )
            if price.currency != order.currency or price.unit_price != line.unit_price:
                expected = f"{price.unit_price} {price.currency}"
                given = f"{line.unit_price} {order.currency}"
                raise PriceMismatch(
                    f"{where}: unit price differs from the catalog on {on.isoformat()}: "
                    f"expected {expected} (version {price.version}), given {given}",
                    field=f"lines[{index}].unit_price",
                    expected=expected,
                    given=given,
                    version=price.version,
                )
