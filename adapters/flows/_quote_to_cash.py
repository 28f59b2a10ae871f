"""Quote-to-cash: a closed-won opportunity becomes an ERP order, a subscription,
a support entitlement, and — when billing invoices it — a posted ERP invoice.

    opportunity.closed_won ─▶ erp.order.create ─▶ erp.order.confirm
        ─▶ billing.subscription.create ─▶ support.entitlement.activate
    invoice.paid (signed webhook) ─▶ erp.invoice.post
    order.confirmed, order.state_changed (ERP poll) ─▶ crm.order.status
        (the ERP sale state onto the opportunity)
    erp.order.confirm refused over the credit limit ─▶ order.on_hold, published to
        the CRM and the desk; released by a raised limit or an approved override
        (``adapters.flows._credit_hold``)

Every step is idempotent against its target (ERP sale by reference, billing
subscription by metadata, support ticket by external ID or ServiceNow case by
correlation ID, ERP invoice by reference), so at-least-once delivery and
replays never double an effect.
Steps reload the order from the CRM instead of trusting a stored payload: the
lineage keeps only masked payloads, and the CRM owns the deal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from collector import Bus, FlowSpec, FlowStep, FlowSteps
from tracing import Event, MappingError, Status, System, ValidationError

from .._canonical import Customer, Invoice, OrderLine, SalesOrder
from ..erp import CreditHold
from ._credit_hold import (
    HOLD_KIND,
    OVERRIDE_KIND,
    RELEASE_CAUSES,
    SIDE_STEPS,
    CreditHoldSteps,
    hold_outcome,
)
from ._ports import BillingPort, CrmPort, ErpPort, SupportPort
from ._steps import StepOutcome, StepRunner

__all__ = [
    "ENTITLEMENT_KEY_PREFIX",
    "MONEY_STEPS",
    "PREVALIDATION_KEY",
    "SPEC",
    "STEPS",
    "TRIGGER_KINDS",
    "OrderCheck",
    "QuoteToCash",
    "apply_corrections",
    "entitlement_key",
    "prevalidate",
]

log = logging.getLogger(__name__)

#: Steps that move money; replaying them needs a second person's approval.
MONEY_STEPS = frozenset(
    {"erp.order.create", "erp.order.confirm", "billing.subscription.create", "erp.invoice.post"}
)
#: The flow's steps in order, each with its deadline from the step it follows: the
#: lineage reads from it what a transaction waits for and whether it is stalled.
#: Interlock's own steps get 15 minutes (a step retries for a few minutes at most);
#: the paid invoice waits on the customer: payment terms (NET30) plus a few days of
#: billing's payment retries.
STEPS = FlowSteps(
    flow="quote-to-cash",
    trigger="opportunity.closed_won",
    steps=(
        FlowStep("erp.order.create", timedelta(minutes=15), kind="order.created"),
        FlowStep("erp.order.confirm", timedelta(minutes=15), kind="order.confirmed"),
        FlowStep("billing.subscription.create", timedelta(minutes=15), kind="subscription.created"),
        FlowStep(
            "support.entitlement.activate", timedelta(minutes=15), kind="entitlement.activated"
        ),
        FlowStep(
            "billing.invoice.received",
            timedelta(days=35),
            after="billing.subscription.create",
            kind="invoice.paid",
        ),
        FlowStep("erp.invoice.post", timedelta(minutes=15), kind="invoice.posted"),
        # The ERP's sale state travels back to the opportunity, beside the billing branch.
        FlowStep(
            "crm.order.status",
            timedelta(minutes=15),
            after="erp.order.confirm",
            kind="order.status.published",
        ),
    ),
    # A credit hold is a business state until the order is confirmed.
    hold_kinds=frozenset({HOLD_KIND}),
    release_kinds=frozenset({"order.confirmed"}),
)
_ACTIONABLE = frozenset({Status.OK, Status.REPLAYED})
#: The support desk keeps the entitlement's idempotency key as its case's external ID.
ENTITLEMENT_KEY_PREFIX = "support.entitlement:"


#: The host's shared list of extra pre-validation checks (``Host.shared``): a plug-in
#: installed before quote-to-cash (the catalog) appends its ``OrderCheck``.
PREVALIDATION_KEY = "quote_to_cash.prevalidation"
#: One more check before the order is written: raises a ValidationError to refuse it.
OrderCheck = Callable[[SalesOrder], Awaitable[None]]


def entitlement_key(order_ref: str) -> str:
    """The idempotency key (and the desk's external ID) of an order's entitlement."""
    return ENTITLEMENT_KEY_PREFIX + order_ref


def prevalidate(
    order: SalesOrder,
    *,
    currencies: frozenset[str],
    payment_terms: frozenset[str],
    known_skus: frozenset[str] | None = None,
) -> None:
    """Checks before anything is written to the ERP; raises ValidationError/MappingError."""
    if not order.customer.customer_id or not order.customer.name.strip():
        raise MappingError(
            "the opportunity's account is not mapped to a customer", field="customer"
        )
    if order.currency not in currencies:
        raise ValidationError(
            f"currency {order.currency} is not billed here (supported: {sorted(currencies)})",
            field="currency",
        )
    if order.payment_terms not in payment_terms:
        raise ValidationError(
            f"payment terms {order.payment_terms!r} are not in the pricing model",
            field="payment_terms",
        )
    if order.total <= 0:
        raise ValidationError("the order total must be positive", field="amount")
    if known_skus is not None:
        for index, line in enumerate(order.lines):
            if line.sku not in known_skus:
                raise MappingError(
                    f"product {line.sku!r} has no mapping to the ERP catalogue",
                    field=f"lines[{index}].sku",
                )


def apply_corrections(order: SalesOrder, corrections: Mapping[str, Any] | None) -> SalesOrder:
    """An operator's corrections from a replay: ``sku_map`` renames products,
    ``payment_terms`` and ``currency`` replace those fields. The result is
    validated again as a canonical SalesOrder."""
    if not corrections:
        return order
    data = order.model_dump()
    sku_map = corrections.get("sku_map") or {}
    if sku_map:
        data["lines"] = [
            {**line, "sku": sku_map.get(line["sku"], line["sku"])} for line in data["lines"]
        ]
    for key in ("payment_terms", "currency"):
        if key in corrections:
            data[key] = corrections[key]
    data["lines"] = [OrderLine.model_validate(line) for line in data["lines"]]
    return SalesOrder.model_validate(data)


def _order_ref(event: Event) -> str:
    ref = event.payload.get("order_ref")
    return str(ref) if ref else event.entity_id


def _corrections(event: Event) -> Mapping[str, Any] | None:
    value = event.payload.get("corrections")
    return value if isinstance(value, Mapping) else None


class QuoteToCash(CreditHoldSteps):
    """The quote-to-cash flow on a bus. ``attach()`` subscribes it."""

    def __init__(
        self,
        bus: Bus,
        runner: StepRunner,
        *,
        crm: CrmPort,
        erp: ErpPort,
        billing: BillingPort,
        support: SupportPort,
        currencies: frozenset[str] = frozenset({"USD"}),
        payment_terms: frozenset[str] = frozenset({"NET30"}),
        known_skus: frozenset[str] | None = None,
        checks: Sequence[OrderCheck] = (),
    ) -> None:
        self._bus = bus
        self._checks = tuple(checks)
        self._run = runner
        self._crm = crm
        self._erp = erp
        self._billing = billing
        self._support = support
        self._currencies = currencies
        self._terms = payment_terms
        self._skus = known_skus

    @property
    def spec(self) -> FlowSpec:
        return SPEC

    def attach(self) -> None:
        """Subscribe to the trigger kinds (the host does this for an installed flow)."""
        self._bus.subscribe(SPEC.subscription, self.handle, kinds=SPEC.trigger_kinds)

    async def handle(self, event: Event) -> None:
        """React to one event; failures become dead-letter events, never exceptions."""
        if event.status not in _ACTIONABLE:
            return
        for react in _REACTIONS.get(event.kind, ()):
            await react(self, event)

    async def _load_order(self, cause: Event) -> SalesOrder:
        order = await self._crm.load_order(_order_ref(cause))
        return apply_corrections(order, _corrections(cause))

    def _carry(self, cause: Event, **payload: Any) -> dict[str, Any]:
        """Payload fields every later step needs: the order ref and any corrections."""
        out: dict[str, Any] = {"order_ref": _order_ref(cause), **payload}
        if _corrections(cause):
            out["corrections"] = dict(_corrections(cause) or {})
        return out

    async def _create_order(self, cause: Event) -> None:
        async def action(_: str) -> StepOutcome:
            order = await self._load_order(cause)
            prevalidate(
                order, currencies=self._currencies, payment_terms=self._terms, known_skus=self._skus
            )
            for check in self._checks:
                await check(order)
            sale, created = await self._erp.create_sale(
                order, idempotency_key=f"erp.order.create:{order.order_ref}"
            )
            return StepOutcome(
                "sales_order",
                order.order_ref,
                self._carry(
                    cause,
                    erp_sale_id=sale.id,
                    erp_order_number=sale.number,
                    erp_state=sale.state,
                    customer={
                        "customer_id": order.customer.customer_id,
                        "name": order.customer.name,
                    },
                    lines=[
                        {
                            "sku": ln.sku,
                            "quantity": str(ln.quantity),
                            "unit_price": str(ln.unit_price),
                        }
                        for ln in order.lines
                    ],
                ),
                created=created,
                amount=order.total,
                currency=order.currency,
                customer_id=order.customer.customer_id,
            )

        await self._run.run(
            cause, kind="order.created", step="erp.order.create", target=System.ERP, action=action
        )

    async def _confirm_order(self, cause: Event) -> None:
        """Confirm the ERP sale. Over the credit limit it is held (``order.on_hold``),
        not dead-lettered; after a hold (a recheck or an approved override) the
        confirmation says ``released_from_hold`` so the holds are lifted."""
        release = cause.kind in RELEASE_CAUSES

        async def action(_: str) -> StepOutcome:
            sale_id = cause.payload.get("erp_sale_id")
            if not isinstance(sale_id, int):
                found = await self._erp.find_sale(_order_ref(cause))
                if found is None:
                    raise ValidationError("no ERP sale for this order", field="erp_sale_id")
                sale_id = found.id
            carry = self._carry(cause, erp_sale_id=sale_id)
            try:
                sale = await self._erp.confirm_sale(
                    sale_id, override_credit=cause.kind == OVERRIDE_KIND
                )
            except CreditHold as exc:
                return hold_outcome(exc, _order_ref(cause), carry)
            extra: dict[str, Any] = {}
            if release:
                extra = {
                    "released_from_hold": True,
                    "released_by": cause.payload.get("released_by") or "credit limit",
                }
            return StepOutcome(
                "sales_order",
                _order_ref(cause),
                self._carry(
                    cause,
                    erp_sale_id=sale.id,
                    erp_order_number=sale.number,
                    erp_state=sale.state,
                    **extra,
                ),
            )

        await self._run.run(
            cause,
            kind="order.confirmed",
            step="erp.order.confirm",
            target=System.ERP,
            action=action,
        )

    async def _publish_status(self, cause: Event) -> None:
        """The ERP sale state the cause reports, onto the CRM opportunity.

        Published where the flow itself moves the sale (confirm answers ``confirmed``
        or ``processing``) and for every later state the ERP poll reports; the key
        carries the state, so a replay rewrites the same value.
        """
        state = str(cause.payload.get("erp_state") or "")
        ref = _order_ref(cause)

        async def action(_: str) -> StepOutcome:
            await self._crm.publish_order_status(ref, state)
            return StepOutcome("opportunity", ref, {"order_ref": ref, "erp_state": state})

        await self._run.run(
            cause,
            kind="order.status.published",
            step="crm.order.status",
            target=System.CRM,
            action=action,
            idempotency_key=f"crm.order.status:{ref}:{state}",
        )

    async def _create_subscription(self, cause: Event) -> None:
        async def action(outcome_id: str) -> StepOutcome:
            order = await self._load_order(cause)
            customer_id = await self._billing.ensure_customer(
                order.customer, idempotency_key=f"billing.customer:{order.customer.customer_id}"
            )
            subscription, created = await self._billing.create_subscription(
                order,
                customer_id,
                idempotency_key=f"billing.subscription.create:{order.order_ref}",
                metadata={
                    "order_ref": order.order_ref,
                    "correlation_id": cause.correlation_id,
                    "customer_id": order.customer.customer_id,
                    "interlock_event_id": outcome_id,
                },
            )
            return StepOutcome(
                "subscription",
                subscription.subscription_id,
                self._carry(
                    cause,
                    subscription_id=subscription.subscription_id,
                    billing_customer_id=customer_id,
                    subscription_status=subscription.status,
                ),
                created=created,
            )

        await self._run.run(
            cause,
            kind="subscription.created",
            step="billing.subscription.create",
            target=System.BILLING,
            action=action,
        )

    async def _activate_entitlement(self, cause: Event) -> None:
        async def action(_: str) -> StepOutcome:
            order = await self._load_order(cause)
            org_id = await self._support.ensure_organization(
                order.customer, idempotency_key=f"support.org:{order.customer.customer_id}"
            )
            case = await self._support.activate_entitlement(
                org_id, order, idempotency_key=entitlement_key(order.order_ref)
            )
            return StepOutcome(
                "support_case",
                case.case_id,
                self._carry(
                    cause, organization_id=org_id, ticket_id=case.case_id, ticket_status=case.status
                ),
            )

        await self._run.run(
            cause,
            kind="entitlement.activated",
            step="support.entitlement.activate",
            target=self._support.system,
            action=action,
        )

    async def _post_invoice(self, cause: Event) -> None:
        invoice_id = cause.entity_id

        async def action(_: str) -> StepOutcome:
            order_ref = _order_ref(cause)
            sale = await self._erp.find_sale(order_ref)
            if sale is None:
                raise ValidationError(
                    f"billing invoiced order {order_ref}, which the ERP does not hold",
                    field="order_ref",
                )
            invoice: Invoice = await self._billing.get_invoice(invoice_id)
            posted, created = await self._erp.post_invoice(
                invoice,
                party_id=sale.party_id,
                description=f"Subscription invoice {invoice.number or invoice_id} for {order_ref}",
                idempotency_key=f"erp.invoice.post:{invoice_id}",
            )
            return StepOutcome(
                "invoice",
                invoice_id,
                {
                    "order_ref": order_ref,
                    "erp_invoice_id": posted.id,
                    "erp_invoice_number": posted.number,
                    "erp_state": posted.state,
                    "amount_due": str(invoice.amount_due),
                },
                created=created,
                amount=invoice.amount_due,
                currency=invoice.currency,
            )

        await self._run.run(
            cause,
            kind="invoice.posted",
            step="erp.invoice.post",
            target=System.ERP,
            action=action,
            idempotency_key=f"erp.invoice.post:{invoice_id}",
        )

    async def probe(self, dead_letter: Event) -> bool | None:
        """For a replay's dry run: does the target already hold this step's effect?"""
        ref = _order_ref(dead_letter)
        if dead_letter.step == "erp.order.create":
            return await self._erp.find_sale(ref) is not None
        if dead_letter.step == "erp.order.confirm":
            sale = await self._erp.find_sale(ref)
            return sale is not None and sale.state in {"confirmed", "processing", "done"}
        if dead_letter.step == "erp.invoice.post":
            found = await self._erp.find_invoice(dead_letter.entity_id)
            return found is not None and found.state in {"posted", "paid"}
        return None


_Reaction = Callable[[QuoteToCash, Event], Awaitable[None]]
#: What each trigger kind makes the flow do, in order: the one table its kinds come
#: from. A confirmed order starts billing and, independently, tells the CRM.
_REACTIONS: dict[str, tuple[_Reaction, ...]] = {
    "opportunity.closed_won": (QuoteToCash._create_order,),
    "order.created": (QuoteToCash._confirm_order,),
    # A credit hold: published back; a recheck (the limit raised) or an approved
    # override confirms again. Billing and support wait for the confirmation.
    HOLD_KIND: (QuoteToCash._publish_hold_crm, QuoteToCash._publish_hold_support),
    **{kind: (QuoteToCash._confirm_order,) for kind in sorted(RELEASE_CAUSES)},
    "order.confirmed": (
        QuoteToCash._create_subscription,
        QuoteToCash._publish_status,
        QuoteToCash._lift_hold_crm,
        QuoteToCash._lift_hold_support,
    ),
    "subscription.created": (QuoteToCash._activate_entitlement,),
    "invoice.paid": (QuoteToCash._post_invoice,),
    # Tryton's own later moves (processing, done, cancelled), from SaleStatePoller.
    "order.state_changed": (QuoteToCash._publish_status,),
}
#: The kinds this flow reacts to.
TRIGGER_KINDS = frozenset(_REACTIONS)
#: Quote-to-cash as the rest of Interlock reads it: replay's four-eyes rule, probes
#: and corrections' models, the SLA rules' step check and the lineage's step table.
#: ``payload_models`` are the payload keys of its events that a replay's corrections
#: must keep valid: the ``order`` a closed-won trigger may carry and the ``customer``
#: of ``order.created``. Its other events carry flat fields (IDs, states, amounts as
#: strings) and no object of a canonical model.
SPEC = FlowSpec(
    name="quote-to-cash",
    steps=STEPS,
    trigger_kinds=TRIGGER_KINDS,
    money_steps=MONEY_STEPS,
    entry_steps={"crm.opportunity.closed_won": "opportunity.closed_won"},
    side_steps=SIDE_STEPS,
    rule_files=(Path(__file__).with_name("credit_hold.yaml"),),
    payload_models={"order": SalesOrder, "customer": Customer},
    group="quote_to_cash",
)
