"""TrytonAdapter against a real trytond server on SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest

from adapters._canonical import Customer, Invoice, SalesOrder
from adapters.erp import CreditHold, ErpSale, TrytonAdapter
from adapters.sandbox.tryton import TrytonServer
from tracing import AuthError, ConflictError, DownstreamUnavailable, MappingError, ValidationError

pytestmark = pytest.mark.slow

MakeOrder = Callable[..., SalesOrder]


def _key() -> str:
    return uuid.uuid4().hex


async def _sales_with_reference(erp: TrytonAdapter, reference: str) -> list[int]:
    ids = await erp._rpc.call("model.sale.sale.search", [["reference", "=", reference]], 0, None)
    return [int(i) for i in ids]


async def test_health(erp: TrytonAdapter) -> None:
    assert await erp.health() is True


async def test_ensure_party_is_idempotent_and_keeps_the_erp_owned_name(erp: TrytonAdapter) -> None:
    """The ERP owns the legal name: a renamed CRM account reaching ``ensure_party`` (a
    later order) does not overwrite it; the customer master's approval does."""
    customer = Customer(customer_id=f"ACC-{_key()[:8]}", name="Initech", email="ap@initech.test")
    first = await erp.ensure_party(customer)
    again = await erp.ensure_party(customer.model_copy(update={"name": "Initech LLC"}))
    assert again == first
    (row,) = await erp._rpc.call(
        "model.party.party.read", [first], ["code", "name", "addresses", "credit_limit_amount"]
    )
    assert row["code"] == customer.customer_id
    assert row["name"] == "Initech"
    assert len(row["addresses"]) == 1
    assert row["credit_limit_amount"] is None


async def test_a_party_created_by_another_writer_meanwhile_is_the_customers_party(
    erp: TrytonAdapter,
) -> None:
    """Another writer creates the party between our search and our create (a second
    process, a clerk): Tryton refuses the second code, and that party is used, not a
    validation dead letter for an order that is fine."""
    customer = Customer(customer_id=f"ACC-{_key()[:10]}", name="Umbrella Corp")
    rpc = erp._rpc
    real_call = rpc.call
    rival: list[int] = []

    async def racing_call(method: str, *params: object, **kwargs: bool) -> object:
        if method == "model.party.party.create" and not rival:
            (made,) = await real_call(
                method, [{"code": customer.customer_id, "name": "Umbrella Corporation"}]
            )
            rival.append(int(made))
        return await real_call(method, *params, **kwargs)

    rpc.call = racing_call  # type: ignore[method-assign]
    try:
        party_id = await erp.ensure_party(customer)
    finally:
        rpc.call = real_call  # type: ignore[method-assign]
    assert party_id == rival[0]
    found = await rpc.call(
        "model.party.party.search", [["code", "=", customer.customer_id]], 0, None
    )
    assert [int(i) for i in found] == rival


async def test_create_sale_twice_gives_one_sale(erp: TrytonAdapter, make_order: MakeOrder) -> None:
    order = make_order(("PLAT-PRO", "2", "199"), ("SEATS-ADDON", "10", "15"))
    sale, created = await erp.create_sale(order, idempotency_key=_key())
    again, created_again = await erp.create_sale(order, idempotency_key=_key())

    assert created is True
    assert created_again is False
    assert again.id == sale.id
    assert await _sales_with_reference(erp, order.order_ref) == [sale.id]
    assert sale.reference == order.order_ref
    assert sale.total == Decimal("548.00")
    assert sale.currency == "USD"
    assert sale.invoice_method == "manual"
    assert sale.state == "draft"
    assert await erp.find_sale(order.order_ref) == sale


async def test_find_sale_unknown_reference_is_none(erp: TrytonAdapter) -> None:
    assert await erp.find_sale(f"OPP-missing-{_key()}") is None


async def test_confirm_sale_confirms_without_invoicing(
    erp: TrytonAdapter, make_order: MakeOrder
) -> None:
    sale, _ = await erp.create_sale(make_order(), idempotency_key=_key())
    confirmed = await erp.confirm_sale(sale.id)

    # Tryton runs the sale's processing right after the confirm commits, so the
    # state is already "processing" (confirmed, nothing left to do but invoice).
    assert confirmed.is_confirmed
    assert confirmed.state in ("confirmed", "processing")
    assert confirmed.number
    ((row,)) = await erp._rpc.call("model.sale.sale.read", [sale.id], ["invoices"])
    assert row["invoices"] == []
    assert await erp.confirm_sale(sale.id) == confirmed  # idempotent


async def test_credit_limit_puts_the_sale_on_hold(
    erp: TrytonAdapter, make_order: MakeOrder
) -> None:
    order = make_order(("PLAT-ENT", "1", "999"))
    party_id = await erp.ensure_party(order.customer)
    await erp.set_credit_limit(party_id, Decimal("500"))
    sale, _ = await erp.create_sale(order, idempotency_key=_key())

    with pytest.raises(ConflictError) as caught:
        await erp.confirm_sale(sale.id)

    assert isinstance(caught.value, CreditHold)
    assert "credit limit" in caught.value.message
    assert caught.value.retriable is False
    held = await erp.find_sale(order.order_ref)
    assert held is not None
    assert not held.is_confirmed
    assert held.state == "quotation"

    # Lifting the limit releases it: the hold was the ERP's rule, not a broken sale.
    await erp.set_credit_limit(party_id, None)
    assert (await erp.confirm_sale(sale.id)).is_confirmed


async def test_unknown_sku_is_a_mapping_error(erp: TrytonAdapter, make_order: MakeOrder) -> None:
    order = make_order(("PLAT-PRO", "1", "199"), ("NO-SUCH-SKU", "1", "5"))
    with pytest.raises(MappingError) as caught:
        await erp.create_sale(order, idempotency_key=_key())
    assert caught.value.field == "lines[1].sku"
    assert await erp.find_sale(order.order_ref) is None


async def test_unknown_currency_is_a_mapping_error(
    erp: TrytonAdapter, make_order: MakeOrder
) -> None:
    order = make_order().model_copy(update={"currency": "XTS"})
    with pytest.raises(MappingError) as caught:
        await erp.create_sale(order, idempotency_key=_key())
    assert caught.value.field == "currency"


async def test_concurrent_create_sale_gives_one_sale(
    erp: TrytonAdapter, tryton_server: TrytonServer, make_order: MakeOrder
) -> None:
    order = make_order()
    async with TrytonAdapter(
        tryton_server.url, tryton_server.database, tryton_server.user, tryton_server.password
    ) as other:
        adapters = [erp, erp, erp, other, other]
        results: list[tuple[ErpSale, bool]] = await asyncio.gather(
            *(a.create_sale(order, idempotency_key=_key()) for a in adapters)
        )
    assert len({sale.id for sale, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(await _sales_with_reference(erp, order.order_ref)) == 1


async def test_post_invoice_twice_gives_one_posted_invoice(erp: TrytonAdapter) -> None:
    customer = Customer(customer_id=f"ACC-{_key()[:8]}", name="Globex")
    party_id = await erp.ensure_party(customer)
    invoice = Invoice(
        invoice_id=f"in_{_key()[:14]}",
        customer_id=customer.customer_id,
        currency="USD",
        amount_due=Decimal("348.00"),
        status="open",
    )
    posted, created = await erp.post_invoice(
        invoice, party_id=party_id, description="Platform Pro, May", idempotency_key=_key()
    )
    again, created_again = await erp.post_invoice(
        invoice, party_id=party_id, description="Platform Pro, May", idempotency_key=_key()
    )
    assert (created, created_again) == (True, False)
    assert again == posted
    assert posted.state == "posted"
    assert posted.number
    assert posted.total == Decimal("348.00")
    assert posted.reference == invoice.invoice_id
    ids = await erp._rpc.call(
        "model.account.invoice.search", [["reference", "=", invoice.invoice_id]], 0, None
    )
    assert ids == [posted.id]


async def test_post_invoice_posts_an_existing_draft(erp: TrytonAdapter) -> None:
    customer = Customer(customer_id=f"ACC-{_key()[:8]}", name="Hooli")
    party_id = await erp.ensure_party(customer)
    invoice = Invoice(
        invoice_id=f"in_{_key()[:14]}",
        customer_id=customer.customer_id,
        currency="USD",
        amount_due=Decimal("15"),
        status="open",
    )
    draft_id = await erp._create_invoice(invoice, party_id, "Seats")
    draft = await erp.find_invoice(invoice.invoice_id)
    assert draft is not None and draft.state == "draft"

    posted, created = await erp.post_invoice(
        invoice, party_id=party_id, description="Seats", idempotency_key=_key()
    )
    assert created is False
    assert posted.id == draft_id
    assert posted.state == "posted"


async def test_an_invoice_posted_meanwhile_is_the_posted_invoice_not_a_conflict(
    erp: TrytonAdapter,
) -> None:
    """The draft is posted by another writer (an earlier attempt whose answer was lost,
    still committing) after we read it as a draft: Tryton refuses the second post, and
    the step has what it wanted, a posted invoice."""
    customer = Customer(customer_id=f"ACC-{_key()[:8]}", name="Pied Piper")
    party_id = await erp.ensure_party(customer)
    invoice = Invoice(
        invoice_id=f"in_{_key()[:14]}",
        customer_id=customer.customer_id,
        currency="USD",
        amount_due=Decimal("25"),
        status="open",
    )
    draft_id = await erp._create_invoice(invoice, party_id, "Seats")
    rpc = erp._rpc
    real_call = rpc.call

    async def racing_call(method: str, *params: object, **kwargs: bool) -> object:
        if method == "model.account.invoice.post":
            await real_call(method, [draft_id], transition=True)  # the other writer
        return await real_call(method, *params, **kwargs)

    rpc.call = racing_call  # type: ignore[method-assign]
    try:
        posted, created = await erp.post_invoice(
            invoice, party_id=party_id, description="Seats", idempotency_key=_key()
        )
    finally:
        rpc.call = real_call  # type: ignore[method-assign]
    assert (posted.id, posted.state, created) == (draft_id, "posted", False)


async def test_negative_invoice_is_rejected(erp: TrytonAdapter) -> None:
    invoice = Invoice(
        invoice_id="in_negative",
        customer_id="ACC-1",
        currency="USD",
        amount_due=Decimal("-1"),
        status="open",
    )
    with pytest.raises(ValidationError) as caught:
        await erp.post_invoice(invoice, party_id=1, description="x", idempotency_key=_key())
    assert caught.value.field == "amount_due"


async def test_expired_session_logs_in_again(erp: TrytonAdapter) -> None:
    assert await erp.health()
    # A session token the server does not know: what an idle-expired session looks like.
    erp._rpc._auth = "Session YWRtaW46MTpub3QtYS10b2tlbg=="
    assert await erp.find_sale(f"OPP-{_key()}") is None
    assert erp._rpc._auth != "Session YWRtaW46MTpub3QtYS10b2tlbg=="


async def test_wrong_password_is_an_auth_error(tryton_server: TrytonServer) -> None:
    async with TrytonAdapter(
        tryton_server.url, tryton_server.database, tryton_server.user, "not-the-password"
    ) as erp:
        with pytest.raises(AuthError) as caught:
            await erp.find_sale("OPP-1")
        assert "not-the-password" not in str(caught.value)
        assert caught.value.retriable is False
        assert await erp.health() is False


async def test_stopped_server_is_downstream_unavailable(tryton_server: TrytonServer) -> None:
    server = TrytonServer().start()
    async with TrytonAdapter(
        server.url, server.database, server.user, server.password, timeout=2.0
    ) as erp:
        assert await erp.health()
        server.stop()
        server.stop()  # safe twice
        with pytest.raises(DownstreamUnavailable) as caught:
            await erp.find_sale("OPP-1")
        assert caught.value.retriable is True
        assert await erp.health() is False


async def test_cross_process_race_converges_on_the_oldest_sale(
    erp: TrytonAdapter, make_order: MakeOrder
) -> None:
    order = make_order()
    sale, _ = await erp.create_sale(order, idempotency_key=_key())
    # Another process that passed its search before our create commits its own copy.
    (rival,) = await erp._rpc.call(
        "model.sale.sale.copy", [sale.id], {"reference": order.order_ref}
    )
    assert len(await _sales_with_reference(erp, order.order_ref)) == 2

    winner = await erp._settle_race("model.sale.sale", order.order_ref, int(rival))

    assert winner == sale.id
    assert await _sales_with_reference(erp, order.order_ref) == [sale.id]


async def test_confirm_unknown_sale_is_a_validation_error(erp: TrytonAdapter) -> None:
    with pytest.raises(ValidationError):
        await erp.confirm_sale(10**9)
