"""Compare what the systems hold; every disagreement is a :class:`Discrepancy`.

Pure: it takes :class:`Holdings` and what the lineage knows of each transaction,
and reads nothing itself, so every class is tested without a system.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal

from adapters.crm import WonDeal
from adapters.erp import CONFIRMED_SALE_STATES
from adapters.flows import entitlement_key
from tracing import correlation_id_for

from ._holdings import Holdings
from ._model import Check, Discrepancy, Kind, Repair, discrepancy_id

__all__ = ["Seen", "compare"]

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Seen:
    """What the lineage knows of one transaction."""

    state: str
    #: Still moving (in progress and touched within the settle window): a record it has
    #: not written yet is in flight, not missing.
    in_flight: bool = False


def deal_correlation_id(opportunity_id: str) -> str:
    return correlation_id_for("crm", "opportunity", opportunity_id)


def compare(
    holdings: Holdings,
    seen: Mapping[str, Seen],
    seen_invoices: Collection[str] = (),
) -> list[Discrepancy]:
    """Every discrepancy in ``holdings``, most money first.

    ``seen`` is what the lineage knows of each transaction; ``seen_invoices`` the
    billing invoices whose paid event Interlock received.
    """
    found: list[Discrepancy] = []
    deals = {d.opportunity_id: d for d in holdings.deals}
    sales = defaultdict(list)
    for sale in holdings.sales:
        sales[sale.reference].append(sale)
    subscriptions = defaultdict(list)
    for sub in holdings.subscriptions:
        subscriptions[sub.order_ref].append(sub)
    erp_invoices = defaultdict(list)
    for posted_invoice in holdings.erp_invoices:
        erp_invoices[posted_invoice.reference].append(posted_invoice)

    def add(
        check: Check,
        kind: Kind,
        system: str,
        key: str,
        *,
        deal: WonDeal | None = None,
        correlation_id: str | None = None,
        customer_id: str | None = None,
        value: Decimal = Decimal(0),
        currency: str | None = None,
        expected: object = None,
        got: object = None,
        detail: str,
        repair: Repair | None = None,
        known: bool | None = None,
    ) -> None:
        cid = correlation_id or (deal_correlation_id(deal.opportunity_id) if deal else None)
        if known is None:
            known = cid is not None and cid in seen
        found.append(
            Discrepancy(
                discrepancy_id=discrepancy_id(check, kind, system, key),
                check=check,
                kind=kind,
                system=system,
                key=key,
                correlation_id=cid,
                customer_id=customer_id or (deal.account_id if deal else None),
                customer_name=deal.account_name if deal else None,
                value_at_risk=abs(value).quantize(_CENT),
                currency=currency or (deal.currency if deal else None),
                expected=None if expected is None else str(expected),
                found=None if got is None else str(got),
                detail=detail,
                repair=repair or (Repair.REPLAY if known else Repair.RESYNC),
                seen_by_interlock=known,
            )
        )

    for ref, deal in deals.items():
        amount = deal.amount or Decimal(0)
        flight = seen.get(deal_correlation_id(ref))
        in_flight = flight is not None and flight.in_flight
        # The ERP: exactly one confirmed sale, same amount and currency.
        every = sales.get(ref, [])
        held = [s for s in every if s.state != "cancelled"]
        if every and not held:
            add(
                Check.DEAL_TO_SALE,
                Kind.STATE_MISMATCH,
                "erp",
                ref,
                deal=deal,
                value=amount,
                expected="confirmed",
                got="cancelled",
                detail=f"the ERP sale of won deal {ref} is cancelled",
            )
        elif not held and not in_flight:
            add(
                Check.DEAL_TO_SALE,
                Kind.MISSING,
                "erp",
                ref,
                deal=deal,
                value=amount,
                detail=f"won deal {ref} has no ERP sale",
            )
        for extra in held[1:]:
            add(
                Check.DEAL_TO_SALE,
                Kind.DUPLICATE,
                "erp",
                f"{ref}#{extra.id}",
                deal=deal,
                value=extra.total,
                currency=extra.currency or deal.currency,
                expected=1,
                got=len(held),
                detail=f"won deal {ref} has {len(held)} ERP sales "
                f"(sale {extra.number or extra.id})",
                repair=Repair.EXPLAIN,
            )
        if held:
            sale = held[0]
            if deal.currency and sale.currency and sale.currency != deal.currency:
                add(
                    Check.DEAL_TO_SALE,
                    Kind.CURRENCY_MISMATCH,
                    "erp",
                    ref,
                    deal=deal,
                    value=amount,
                    expected=deal.currency,
                    got=sale.currency,
                    detail=f"ERP sale {sale.number or sale.id} is in {sale.currency}, "
                    f"the deal in {deal.currency}",
                )
            elif sale.total.quantize(_CENT) != amount.quantize(_CENT):
                add(
                    Check.DEAL_TO_SALE,
                    Kind.AMOUNT_MISMATCH,
                    "erp",
                    ref,
                    deal=deal,
                    value=sale.total - amount,
                    expected=amount,
                    got=sale.total,
                    detail=f"ERP sale {sale.number or sale.id} totals {sale.total}, "
                    f"the deal {amount}",
                )
            if sale.state not in CONFIRMED_SALE_STATES and not in_flight:
                add(
                    Check.DEAL_TO_SALE,
                    Kind.STATE_MISMATCH,
                    "erp",
                    ref,
                    deal=deal,
                    value=amount,
                    expected="confirmed",
                    got=sale.state,
                    detail=f"ERP sale {sale.number or sale.id} is {sale.state} for a won deal",
                )
        # Billing: exactly one live subscription of the deal's value.
        subs = subscriptions.get(ref, [])
        if not subs and not in_flight:
            add(
                Check.DEAL_TO_SUBSCRIPTION,
                Kind.MISSING,
                "billing",
                ref,
                deal=deal,
                value=amount,
                detail=f"won deal {ref} has no billing subscription",
            )
        for extra_sub in subs[1:]:
            add(
                Check.DEAL_TO_SUBSCRIPTION,
                Kind.DUPLICATE,
                "billing",
                f"{ref}#{extra_sub.subscription_id}",
                deal=deal,
                value=extra_sub.amount,
                currency=extra_sub.currency,
                expected=1,
                got=len(subs),
                detail=f"won deal {ref} has {len(subs)} subscriptions "
                f"({extra_sub.subscription_id})",
                repair=Repair.EXPLAIN,
            )
        if subs:
            sub = subs[0]
            if sub.status in ("canceled", "incomplete_expired"):
                add(
                    Check.DEAL_TO_SUBSCRIPTION,
                    Kind.STATE_MISMATCH,
                    "billing",
                    ref,
                    deal=deal,
                    value=sub.amount,
                    currency=sub.currency,
                    expected="active",
                    got=sub.status,
                    detail=f"subscription {sub.subscription_id} of a won deal is {sub.status}",
                    repair=Repair.EXPLAIN,
                )
            elif deal.currency and sub.currency != deal.currency:
                add(
                    Check.DEAL_TO_SUBSCRIPTION,
                    Kind.CURRENCY_MISMATCH,
                    "billing",
                    ref,
                    deal=deal,
                    value=amount,
                    expected=deal.currency,
                    got=sub.currency,
                    detail=f"subscription {sub.subscription_id} is in {sub.currency}",
                )
            elif sub.amount.quantize(_CENT) != amount.quantize(_CENT):
                add(
                    Check.DEAL_TO_SUBSCRIPTION,
                    Kind.AMOUNT_MISMATCH,
                    "billing",
                    ref,
                    deal=deal,
                    value=sub.amount - amount,
                    expected=amount,
                    got=sub.amount,
                    detail=f"subscription {sub.subscription_id} bills {sub.amount} a "
                    f"period, the deal is {amount}",
                )
        # Support: exactly one entitlement ticket.
        tickets = holdings.entitlements.get(entitlement_key(ref), [])
        if not tickets and not in_flight:
            add(
                Check.DEAL_TO_ENTITLEMENT,
                Kind.MISSING,
                "support",
                ref,
                deal=deal,
                value=amount,
                detail=f"won deal {ref} has no support entitlement",
            )
        if len(tickets) > 1:
            add(
                Check.DEAL_TO_ENTITLEMENT,
                Kind.DUPLICATE,
                "support",
                ref,
                deal=deal,
                expected=1,
                got=len(tickets),
                repair=Repair.EXPLAIN,
                detail=f"won deal {ref} has {len(tickets)} entitlement tickets "
                f"({', '.join(tickets)})",
            )
        # The customer cross-reference, one to one.
        account = deal.account_id
        if account:
            for system, ids in (
                ("erp", holdings.parties.get(account, [])),
                ("billing", holdings.billing_customers.get(account, [])),
                ("support", holdings.organizations.get(account, [])),
            ):
                if len(ids) > 1:
                    add(
                        Check.CUSTOMER_CROSS_REFERENCE,
                        Kind.DUPLICATE,
                        system,
                        account,
                        deal=deal,
                        expected=1,
                        got=len(ids),
                        repair=Repair.EXPLAIN,
                        detail=f"customer {account} is {len(ids)} records in {system}: "
                        f"{', '.join(map(str, ids))}",
                    )
                elif not ids and not in_flight:
                    add(
                        Check.CUSTOMER_CROSS_REFERENCE,
                        Kind.MISSING,
                        system,
                        account,
                        deal=deal,
                        detail=f"customer {account} has no record in {system}",
                    )

    # ERP sales dated in the period that no won deal asked for (keyed in by hand, or a
    # deal no longer won).
    for ref, held in sales.items():
        if ref in deals:
            continue
        for sale in held:
            if sale.state == "cancelled":
                continue
            add(
                Check.DEAL_TO_SALE,
                Kind.ORPHAN,
                "erp",
                f"{ref or '-'}#{sale.id}",
                value=sale.total,
                currency=sale.currency,
                got=sale.number or sale.id,
                correlation_id=deal_correlation_id(ref) if ref else None,
                detail=f"ERP sale {sale.number or sale.id} (reference {ref or 'none'}) "
                "matches no won deal of the period",
                repair=Repair.EXPLAIN,
            )

    # Every paid billing invoice: exactly one posted ERP invoice of the same amount.
    for inv in holdings.paid_invoices:
        cid = deal_correlation_id(inv.order_ref) if inv.order_ref else None
        posted = erp_invoices.get(inv.invoice_id, [])
        paid_deal = deals.get(inv.order_ref or "")
        if not posted:
            # Received and failed: its dead letter is replayed; never received (a
            # webhook lost on the way): billing's events are read again.
            received = inv.invoice_id in seen_invoices
            add(
                Check.PAID_INVOICE_TO_ERP,
                Kind.MISSING,
                "erp",
                inv.invoice_id,
                deal=paid_deal,
                correlation_id=cid,
                customer_id=inv.customer_id,
                value=inv.amount_paid,
                currency=inv.currency,
                detail=f"paid invoice {inv.invoice_id} has no ERP invoice"
                + ("" if received else "; Interlock never received its paid event"),
                known=received,
                repair=Repair.REPLAY if received else Repair.RESYNC,
            )
            continue
        for extra_inv in posted[1:]:
            add(
                Check.PAID_INVOICE_TO_ERP,
                Kind.DUPLICATE,
                "erp",
                f"{inv.invoice_id}#{extra_inv.id}",
                deal=paid_deal,
                correlation_id=cid,
                customer_id=inv.customer_id,
                value=extra_inv.total,
                currency=inv.currency,
                expected=1,
                got=len(posted),
                repair=Repair.EXPLAIN,
                detail=f"paid invoice {inv.invoice_id} is {len(posted)} ERP invoices",
            )
        erp_inv = posted[0]
        if erp_inv.total.quantize(_CENT) != inv.amount_paid.quantize(_CENT):
            add(
                Check.PAID_INVOICE_TO_ERP,
                Kind.AMOUNT_MISMATCH,
                "erp",
                inv.invoice_id,
                deal=paid_deal,
                correlation_id=cid,
                customer_id=inv.customer_id,
                value=erp_inv.total - inv.amount_paid,
                currency=inv.currency,
                expected=inv.amount_paid,
                got=erp_inv.total,
                detail=f"ERP invoice {erp_inv.number or erp_inv.id} is {erp_inv.total}, "
                f"billing collected {inv.amount_paid}",
            )
        if erp_inv.state not in ("posted", "paid"):
            add(
                Check.PAID_INVOICE_TO_ERP,
                Kind.STATE_MISMATCH,
                "erp",
                inv.invoice_id,
                deal=paid_deal,
                correlation_id=cid,
                customer_id=inv.customer_id,
                value=inv.amount_paid,
                currency=inv.currency,
                expected="posted",
                got=erp_inv.state,
                detail=f"ERP invoice {erp_inv.number or erp_inv.id} is {erp_inv.state}",
            )
    found.sort(key=lambda d: (-d.value_at_risk, d.check.value, d.key))
    return found
