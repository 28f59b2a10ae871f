"""Stripe-shaped payloads to canonical objects. No flow sees a Stripe payload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from adapters._canonical import BillingInterval, Invoice, Subscription
from tracing import MappingError

from ._events import StripeInvoice, WebhookPayloadError, parse_stripe_invoice
from ._form import from_minor_units

__all__ = [
    "CUSTOMER_ID_KEY",
    "INTERLOCK_CUSTOMER_KEY",
    "ORDER_REF_KEY",
    "event_invoice_metadata",
    "invoice_from_event",
    "invoice_from_stripe",
    "invoice_metadata",
    "subscription_from_stripe",
]

# Metadata keys Interlock writes on billing objects.
ORDER_REF_KEY = "order_ref"
CUSTOMER_ID_KEY = "customer_id"
INTERLOCK_CUSTOMER_KEY = "interlock_customer_id"


def _str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _require(obj: Mapping[str, Any], key: str, kind: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise MappingError(f"{kind} payload has no {key!r}", field=key, system="billing")
    return value


def subscription_from_stripe(sub: Mapping[str, Any]) -> Subscription:
    """A Stripe subscription (items expanded with their plans, as Stripe returns them)."""
    metadata = _str_dict(sub.get("metadata"))
    items = (sub.get("items") or {}).get("data") or []
    if not items:
        raise MappingError("subscription has no items", field="items", system="billing")
    plans = [item.get("plan") or item.get("price") or {} for item in items]
    currency = str(plans[0].get("currency") or "")
    interval = str(plans[0].get("interval") or (plans[0].get("recurring") or {}).get("interval"))
    try:
        total_minor = sum(
            int(plan.get("amount", plan.get("unit_amount")) or 0) * int(item.get("quantity") or 1)
            for plan, item in zip(plans, items, strict=True)
        )
        return Subscription(
            subscription_id=str(_require(sub, "id", "subscription")),
            customer_id=_require(metadata, CUSTOMER_ID_KEY, "subscription metadata"),
            billing_customer_id=str(_require(sub, "customer", "subscription")),
            order_ref=_require(metadata, ORDER_REF_KEY, "subscription metadata"),
            status=str(_require(sub, "status", "subscription")),
            currency=currency.upper(),
            amount=from_minor_units(total_minor, currency),
            interval=BillingInterval(interval),
        )
    except (PydanticValidationError, ValueError, TypeError) as exc:
        raise MappingError(f"unmappable subscription: {exc}", system="billing") from exc


def _invoice_model(inv: Mapping[str, Any] | StripeInvoice) -> StripeInvoice:
    if isinstance(inv, StripeInvoice):
        return inv
    try:
        return parse_stripe_invoice(inv)
    except WebhookPayloadError as exc:
        raise MappingError(exc.message, field=exc.field, system="billing") from exc


def invoice_metadata(inv: Mapping[str, Any] | StripeInvoice) -> dict[str, str]:
    """Interlock's keys, wherever Stripe put them.

    Invoice metadata first; then the subscription's metadata as newer API
    versions copy it (``parent.subscription_details.metadata``); then the
    subscription line items, which carry the subscription's metadata in Stripe
    and the item metadata we set in localstripe. ``MappingError`` when ``inv``
    does not fit the invoice shape.
    """
    model = _invoice_model(inv)
    found: dict[str, str] = {}
    sources: list[Mapping[str, str | None] | None] = [model.metadata]
    if model.parent is not None and model.parent.subscription_details is not None:
        sources.append(model.parent.subscription_details.metadata)
    if model.lines is not None:
        sources += [line.metadata for line in model.lines.data]
    for source in sources:
        for key, value in (source or {}).items():
            if value is not None:
                found.setdefault(key, value)
    return found


def event_invoice_metadata(event: Mapping[str, Any]) -> dict[str, str]:
    """Interlock's keys on the invoice an ``invoice.*`` event carries; ``{}`` for others."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping) or obj.get("object") != "invoice":
        return {}
    return invoice_metadata(obj)


def invoice_from_stripe(
    inv: Mapping[str, Any] | StripeInvoice, *, extra_metadata: Mapping[str, str] | None = None
) -> Invoice:
    """A Stripe invoice; ``extra_metadata`` (the subscription's) fills missing keys.

    ``MappingError`` when the invoice does not fit its bounded shape or carries
    no Interlock customer ID.
    """
    model = _invoice_model(inv)
    metadata = dict(extra_metadata or {})
    metadata.update(invoice_metadata(model))
    customer_id = metadata.get(CUSTOMER_ID_KEY) or metadata.get(INTERLOCK_CUSTOMER_KEY)
    if not customer_id:
        raise MappingError(
            f"invoice {model.id} carries no Interlock customer ID in its metadata",
            field=CUSTOMER_ID_KEY,
            system="billing",
        )
    details = model.parent.subscription_details if model.parent is not None else None
    subscription = model.subscription or (details.subscription if details else None)
    try:
        return Invoice(
            invoice_id=model.id,
            customer_id=customer_id,
            order_ref=metadata.get(ORDER_REF_KEY),
            subscription_id=subscription,
            currency=model.currency,
            amount_due=from_minor_units(model.amount_due, model.currency),
            amount_paid=from_minor_units(model.amount_paid or 0, model.currency),
            status=model.status,
            number=model.number,
        )
    except (PydanticValidationError, ValueError, TypeError) as exc:
        raise MappingError(f"unmappable invoice: {exc}", system="billing") from exc


def invoice_from_event(event: Mapping[str, Any]) -> Invoice | None:
    """The canonical invoice in an ``invoice.*`` event; ``None`` for other event types.

    Raises ``MappingError`` when an invoice event cannot be mapped (so the caller
    dead-letters it instead of dropping it).
    """
    kind = event.get("type")
    if not isinstance(kind, str) or not kind.startswith("invoice."):
        return None
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping) or obj.get("object") != "invoice":
        raise MappingError(f"{kind} event carries no invoice object", system="billing")
    return invoice_from_stripe(obj)
