"""The credit hold, quote-to-cash's reverse flow: the ERP's refusal to confirm an
order over the party's credit limit is a business state, published back, and lifted
on release.

    erp.order.confirm refused (CreditHold) ─▶ erp.order.hold (order.on_hold)
        ─▶ crm.hold.publish      (opportunity and account flagged, a Task)
        ─▶ support.hold.publish  (open cases raised and tagged, a note)
    limit raised (CreditReleaser poll) ─▶ erp.credit.recheck (order.hold.recheck)
    override approved (control API)    ─▶ interlock.hold.override (order.hold.override)
        ─▶ erp.order.confirm (order.confirmed, ``released_from_hold``)
        ─▶ crm.hold.lift, support.hold.lift, then billing and support as usual

Billing is held by not provisioning: the subscription is created only from
``order.confirmed``, so no invoice exists for a held order (localstripe has no
``pause_collection`` to provision with collection held).

None of these steps is in the step table (an order that is never held must not
wait on them); the spec declares them as side steps, so replay and the SLA rules
know them, and ``order.on_hold`` / ``order.confirmed`` as the hold and release
kinds the lineage reads its ``on_hold`` state from.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tracing import Event, System

from ..erp import CreditHold
from ._ports import CrmPort, SupportPort
from ._steps import StepOutcome, StepRunner

__all__ = [
    "HOLD_KIND",
    "HOLD_STEP",
    "OVERRIDE_KIND",
    "OVERRIDE_STEP",
    "RECHECK_KIND",
    "RECHECK_STEP",
    "SIDE_STEPS",
    "hold_outcome",
]

HOLD_KIND, HOLD_STEP = "order.on_hold", "erp.order.hold"
RECHECK_KIND, RECHECK_STEP = "order.hold.recheck", "erp.credit.recheck"
OVERRIDE_KIND, OVERRIDE_STEP = "order.hold.override", "interlock.hold.override"
#: The hold's steps outside the step table, and the kind of each one's ``ok`` event.
SIDE_STEPS = {
    HOLD_STEP: HOLD_KIND,
    "crm.hold.publish": "crm.hold.published",
    "support.hold.publish": "support.hold.published",
    RECHECK_STEP: RECHECK_KIND,
    OVERRIDE_STEP: OVERRIDE_KIND,
    "crm.hold.lift": "crm.hold.lifted",
    "support.hold.lift": "support.hold.lifted",
}
#: The kinds after which a confirmation is a release of a hold.
RELEASE_CAUSES = frozenset({RECHECK_KIND, OVERRIDE_KIND})


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def hold_outcome(exc: CreditHold, ref: str, carry: dict[str, Any]) -> StepOutcome:
    """The ``order.on_hold`` outcome of a confirm the ERP refused."""
    return StepOutcome(
        "sales_order",
        ref,
        {
            **carry,
            "reason": "credit",
            "party_id": exc.party_id,
            "exposure": _text(exc.exposure),
            "limit": _text(exc.limit),
            "amount": _text(exc.amount),
            "message": exc.message,
        },
        kind=HOLD_KIND,
        step=HOLD_STEP,
    )


def _decimal(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _note(cause: Event, *, held: bool) -> str:
    ref = str(cause.payload.get("order_ref") or cause.entity_id)
    if held:
        return (
            f"Credit hold on order {ref}: exposure {cause.payload.get('exposure')}, "
            f"limit {cause.payload.get('limit')}, order {cause.payload.get('amount')} "
            f"{cause.currency or ''}".rstrip()
        )
    return f"Credit hold on order {ref} released ({cause.payload.get('released_by') or 'ERP'})"


class CreditHoldSteps:
    """The hold's publication and lift steps; mixed into :class:`QuoteToCash`,
    which sets these."""

    _run: StepRunner
    _crm: CrmPort
    _support: SupportPort

    async def _publish_hold_crm(self, cause: Event) -> None:
        ref = str(cause.payload.get("order_ref") or cause.entity_id)

        async def action(_: str) -> StepOutcome:
            order = await self._crm.load_order(ref)
            account = order.customer.customer_id
            await self._crm.show_credit_hold(
                ref,
                account,
                held=True,
                reason="credit",
                exposure=_decimal(cause.payload.get("exposure")),
                limit=_decimal(cause.payload.get("limit")),
            )
            task = await self._crm.create_task(
                what_id=ref,
                subject=f"Credit hold: {order.customer.name} ({ref})",
                description=(
                    f"For the owner of account {account}. {_note(cause, held=True)}. "
                    "Finance releases it by raising the limit in the ERP or by an "
                    "approved override in Interlock."
                ),
                priority="High",
                idempotency_key=f"crm.hold.task:{ref}",
            )
            return StepOutcome(
                "opportunity",
                ref,
                {"order_ref": ref, "account_id": account, "task_id": str(task.task_id)},
            )

        await self._run.run(
            cause,
            kind="crm.hold.published",
            step="crm.hold.publish",
            target=System.CRM,
            action=action,
            idempotency_key=f"crm.hold.publish:{cause.event_id}",
        )

    async def _publish_hold_support(self, cause: Event) -> None:
        ref = str(cause.payload.get("order_ref") or cause.entity_id)

        async def action(_: str) -> StepOutcome:
            order = await self._crm.load_order(ref)
            org_id = await self._support.ensure_organization(
                order.customer, idempotency_key=f"support.org:{order.customer.customer_id}"
            )
            priors = await self._support.hold_cases(
                org_id, note=_note(cause, held=True), idempotency_key=f"support.hold:{ref}"
            )
            return StepOutcome(
                "support_organization",
                org_id,
                {"order_ref": ref, "organization_id": org_id, "cases_raised": sorted(priors)},
            )

        await self._run.run(
            cause,
            kind="support.hold.published",
            step="support.hold.publish",
            target=self._support.system,
            action=action,
            idempotency_key=f"support.hold.publish:{cause.event_id}",
        )

    async def _lift_hold_crm(self, cause: Event) -> None:
        if not cause.payload.get("released_from_hold"):
            return
        ref = str(cause.payload.get("order_ref") or cause.entity_id)

        async def action(_: str) -> StepOutcome:
            order = await self._crm.load_order(ref)
            await self._crm.show_credit_hold(ref, order.customer.customer_id, held=False)
            return StepOutcome("opportunity", ref, {"order_ref": ref})

        await self._run.run(
            cause, kind="crm.hold.lifted", step="crm.hold.lift", target=System.CRM, action=action
        )

    async def _lift_hold_support(self, cause: Event) -> None:
        if not cause.payload.get("released_from_hold"):
            return
        ref = str(cause.payload.get("order_ref") or cause.entity_id)

        async def action(_: str) -> StepOutcome:
            order = await self._crm.load_order(ref)
            org_id = await self._support.ensure_organization(
                order.customer, idempotency_key=f"support.org:{order.customer.customer_id}"
            )
            released = await self._support.release_cases(
                org_id, note=_note(cause, held=False), idempotency_key=f"support.unhold:{ref}"
            )
            return StepOutcome(
                "support_organization",
                org_id,
                {"order_ref": ref, "organization_id": org_id, "cases_released": released},
            )

        await self._run.run(
            cause,
            kind="support.hold.lifted",
            step="support.hold.lift",
            target=self._support.system,
            action=action,
        )
