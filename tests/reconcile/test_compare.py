"""Each discrepancy class, from holdings built by hand (no system needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from adapters import BillingInterval, Invoice, Subscription
from adapters.crm import WonDeal
from adapters.erp import ErpInvoice, ErpSale
from adapters.flows import entitlement_key
from adapters.reconcile import Check, Holdings, Kind, Repair, Seen, compare, period_for
from adapters.reconcile._compare import deal_correlation_id
from tracing import ValidationError

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
PERIOD = period_for("day", now=NOW)


def deal(ref: str, amount: str = "1000.00", currency: str = "USD") -> WonDeal:
    return WonDeal(ref, f"ACC-{ref}", f"Acme {ref}", Decimal(amount), currency, date(2026, 12, 3))


def sale(ref: str, total: str = "1000.00", *, id: int = 1, state: str = "confirmed",
         currency: str = "USD") -> ErpSale:  # fmt: skip
    return ErpSale(id, f"S{id}", ref, state, Decimal(total), currency, 7, "manual")


def sub(
    ref: str, amount: str = "1000.00", *, id: str = "sub_1", status: str = "active"
) -> Subscription:
    return Subscription(
        subscription_id=id, customer_id=f"ACC-{ref}", billing_customer_id="cus_1",
        order_ref=ref, status=status, currency="USD", amount=Decimal(amount),
        interval=BillingInterval.MONTH,
    )  # fmt: skip


def whole(ref: str, amount: str = "1000.00") -> Holdings:
    """A deal every system holds exactly once, as it should."""
    account = f"ACC-{ref}"
    return Holdings(
        PERIOD,
        deals=[deal(ref, amount)],
        sales=[sale(ref, amount)],
        subscriptions=[sub(ref, amount)],
        entitlements={entitlement_key(ref): ["41"]},
        parties={account: [7]},
        billing_customers={account: ["cus_1"]},
        organizations={account: ["9"]},
    )


def one(found, kind: Kind, system: str):  # type: ignore[no-untyped-def]
    matches = [d for d in found if d.kind is kind and d.system == system]
    assert len(matches) == 1, found
    return matches[0]


def test_a_deal_every_system_holds_once_is_clean() -> None:
    assert compare(whole("006A"), {}) == []


def test_a_deal_the_erp_never_got_is_missing_and_interlock_never_saw_it() -> None:
    h = whole("006A")
    h.sales = []
    d = one(compare(h, {}), Kind.MISSING, "erp")
    assert (d.check, d.value_at_risk, d.currency) == (Check.DEAL_TO_SALE, Decimal("1000.00"), "USD")
    assert (d.seen_by_interlock, d.repair) == (False, Repair.RESYNC)
    assert d.customer_name == "Acme 006A" and d.correlation_id == deal_correlation_id("006A")


def test_a_missing_record_of_a_transaction_interlock_saw_is_replayed() -> None:
    h = whole("006A")
    h.subscriptions = []
    seen = {deal_correlation_id("006A"): Seen("dead_lettered")}
    d = one(compare(h, seen), Kind.MISSING, "billing")
    assert (d.seen_by_interlock, d.repair) == (True, Repair.REPLAY)


def test_a_transaction_still_moving_is_in_flight_not_missing() -> None:
    h = whole("006A")
    h.sales, h.subscriptions, h.entitlements = [], [], {}
    assert compare(h, {deal_correlation_id("006A"): Seen("in_progress", in_flight=True)}) == []


def test_an_amount_edited_in_the_erp_is_a_mismatch_worth_the_difference() -> None:
    h = whole("006A")
    h.sales = [sale("006A", "1250.00")]
    d = one(compare(h, {}), Kind.AMOUNT_MISMATCH, "erp")
    assert (d.value_at_risk, d.expected, d.found) == (Decimal("250.00"), "1000.00", "1250.00")


def test_a_currency_mismatch_and_an_unconfirmed_sale() -> None:
    h = whole("006A")
    h.sales = [sale("006A", currency="EUR", state="draft")]
    found = compare(h, {})
    assert one(found, Kind.CURRENCY_MISMATCH, "erp").found == "EUR"
    assert one(found, Kind.STATE_MISMATCH, "erp").found == "draft"


def test_a_sale_keyed_twice_is_a_duplicate_worth_the_second() -> None:
    h = whole("006A")
    h.sales = [sale("006A"), sale("006A", "990.00", id=2)]
    d = one(compare(h, {}), Kind.DUPLICATE, "erp")
    assert (d.value_at_risk, d.key, d.repair) == (Decimal("990.00"), "006A#2", Repair.EXPLAIN)


def test_a_sale_no_deal_asked_for_is_an_orphan() -> None:
    h = whole("006A")
    h.sales.append(sale("", "400.00", id=3))
    d = one(compare(h, {}), Kind.ORPHAN, "erp")
    assert (d.value_at_risk, d.key) == (Decimal("400.00"), "-#3")


def test_a_subscription_cancelled_in_billing_is_a_state_mismatch() -> None:
    h = whole("006A")
    h.subscriptions = [sub("006A", status="canceled")]
    d = one(compare(h, {}), Kind.STATE_MISMATCH, "billing")
    assert (d.expected, d.found, d.value_at_risk) == ("active", "canceled", Decimal("1000.00"))


def test_a_paid_invoice_without_an_erp_invoice_is_missing_and_a_short_one_a_mismatch() -> None:
    h = whole("006A")
    paid = Invoice(invoice_id="in_1", customer_id="ACC-006A", order_ref="006A",
                   currency="USD", amount_due=Decimal("1000"), amount_paid=Decimal("1000"),
                   status="paid")  # fmt: skip
    h.paid_invoices = [paid]
    d = one(compare(h, {}), Kind.MISSING, "erp")
    assert (d.check, d.key, d.value_at_risk) == (
        Check.PAID_INVOICE_TO_ERP, "in_1", Decimal("1000.00")
    )  # fmt: skip
    h.erp_invoices = [ErpInvoice(5, "INV5", "in_1", "posted", Decimal("900"))]
    d = one(compare(h, {}), Kind.AMOUNT_MISMATCH, "erp")
    assert d.value_at_risk == Decimal("100.00")


def test_a_customer_with_two_parties_breaks_the_cross_reference() -> None:
    h = whole("006A")
    h.parties = {"ACC-006A": [7, 8]}
    d = one(compare(h, {}), Kind.DUPLICATE, "erp")
    assert d.check is Check.CUSTOMER_CROSS_REFERENCE and d.found == "2"


def test_the_same_disagreement_keeps_its_id_across_runs() -> None:
    h = whole("006A")
    h.sales = []
    assert compare(h, {})[0].discrepancy_id == compare(h, {})[0].discrepancy_id


def test_periods() -> None:
    day = period_for("day", now=NOW)
    assert (day.start, day.end) == (
        datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC)
    )  # fmt: skip
    assert day.dates == (date(2026, 12, 3), date(2026, 12, 4))
    assert period_for("month", now=NOW).start == datetime(2026, 11, 4, tzinfo=UTC)
    with pytest.raises(ValidationError, match="needs from and to"):
        period_for("custom")
    with pytest.raises(ValidationError, match="after its start"):
        period_for("custom", start=NOW, end=NOW)
    with pytest.raises(ValidationError, match="unknown period"):
        period_for("year")
