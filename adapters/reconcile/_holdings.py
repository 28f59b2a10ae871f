"""What each system holds for a period, read from the systems themselves (not from
the lineage): paged, and retried through rate limits with the adapters' policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, TypeVar

from adapters._canonical import Invoice, Subscription
from adapters._retry import RetryPolicy, retry_call
from adapters.crm import WonDeal
from adapters.erp import ErpInvoice, ErpSale
from adapters.flows import ENTITLEMENT_KEY_PREFIX

from ._model import Period

__all__ = [
    "BillingHoldings",
    "CrmHoldings",
    "ErpHoldings",
    "Holdings",
    "SupportHoldings",
    "read_holdings",
]

T = TypeVar("T")


class CrmHoldings(Protocol):
    async def won_deals(self, start: date, end: date) -> list[WonDeal]: ...


class ErpHoldings(Protocol):
    async def sales(
        self, references: Sequence[str] = (), *, dated: tuple[date, date] | None = None
    ) -> list[ErpSale]: ...
    async def invoices(self, references: Sequence[str]) -> list[ErpInvoice]: ...
    async def parties_by_code(self, codes: Sequence[str]) -> dict[str, list[int]]: ...


class BillingHoldings(Protocol):
    async def subscriptions(self) -> list[Subscription]: ...
    async def paid_invoices(
        self, since: int, until: int, *, subscriptions: Sequence[Subscription] = ()
    ) -> list[Invoice]: ...
    async def customers_by_interlock_id(self) -> dict[str, list[str]]: ...


class SupportHoldings(Protocol):
    async def tickets_by_external_id(self, prefix: str) -> dict[str, list[str]]: ...
    async def organizations_by_external_id(self) -> dict[str, list[str]]: ...


@dataclass
class Holdings:
    """Everything one run compares, as each system holds it."""

    period: Period
    deals: list[WonDeal] = field(default_factory=list)
    sales: list[ErpSale] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    #: Entitlement cases by external ID (``adapters.flows.entitlement_key(order_ref)``).
    entitlements: dict[str, list[str]] = field(default_factory=dict)
    paid_invoices: list[Invoice] = field(default_factory=list)
    erp_invoices: list[ErpInvoice] = field(default_factory=list)
    #: The customer cross-reference: IDs in each system by Interlock customer ID.
    parties: dict[str, list[int]] = field(default_factory=dict)
    billing_customers: dict[str, list[str]] = field(default_factory=dict)
    organizations: dict[str, list[str]] = field(default_factory=dict)
    #: Seconds each system took to read.
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """How many records of each kind were compared."""
        return {
            "deals": len(self.deals),
            "erp_sales": len(self.sales),
            "subscriptions": len(self.subscriptions),
            "entitlements": len(self.entitlements),
            "paid_invoices": len(self.paid_invoices),
            "erp_invoices": len(self.erp_invoices),
        }


async def read_holdings(
    period: Period,
    *,
    crm: CrmHoldings,
    erp: ErpHoldings,
    billing: BillingHoldings,
    support: SupportHoldings,
    policy: RetryPolicy | None = None,
) -> Holdings:
    """Read what the four systems hold for ``period``.

    The CRM goes first (its won deals name what the others must hold); billing and
    support are read while the ERP is, since none depends on another.
    """
    policy = policy or RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=15.0)
    out = Holdings(period)

    async def timed(name: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await retry_call(call, policy)
        finally:
            out.timings[name] = out.timings.get(name, 0.0) + time.perf_counter() - started

    first, after = period.dates
    out.deals = await timed("crm", lambda: crm.won_deals(first, after))
    refs = [d.opportunity_id for d in out.deals]
    accounts = sorted({d.account_id for d in out.deals if d.account_id})
    since, until = int(period.start.timestamp()), int(period.end.timestamp())

    async def read_erp() -> None:
        out.sales = await timed("erp", lambda: erp.sales(refs, dated=(first, after)))
        out.parties = await timed("erp", lambda: erp.parties_by_code(accounts))

    async def read_billing() -> None:
        out.subscriptions = await timed("billing", billing.subscriptions)
        # The subscriptions just read map the invoices to their orders: no call each.
        out.paid_invoices = await timed(
            "billing",
            lambda: billing.paid_invoices(since, until, subscriptions=out.subscriptions),
        )
        out.billing_customers = await timed("billing", billing.customers_by_interlock_id)

    async def read_support() -> None:
        out.entitlements = await timed(
            "support", lambda: support.tickets_by_external_id(ENTITLEMENT_KEY_PREFIX)
        )
        out.organizations = await timed("support", support.organizations_by_external_id)

    await asyncio.gather(read_erp(), read_billing(), read_support())
    invoice_ids = [inv.invoice_id for inv in out.paid_invoices]
    out.erp_invoices = await timed("erp", lambda: erp.invoices(invoice_ids))
    return out
