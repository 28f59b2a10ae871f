"""Stripe-shaped payloads to canonical objects. No flow sees a Stripe payload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from adapters._canonical import BillingInterval, Invoice, Subscription
from tracing import MappingError

from ._form import from_minor_units

__all__ = [
    "CUSTOMER_ID_KEY",
    "INTERLOCK_CUSTOMER_KEY",
    "ORDER_REF_KEY",
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


def invoice_metadata(inv: Mapping[str, Any]) -> dict[str, str]:
    """Interlock's keys, wherever Stripe put them.

    Invoice metadata first; then the subscription's metadata as newer API
    versions copy it (``parent.subscription_details.metadata``); then the
    subscription line items, which carry the subscription's metadata in Stripe
    and the item metadata we set in localstripe.
    """
    found: dict[str, str] = {}
    sources: list[Any] = [inv.get("metadata")]
    parent = inv.get("parent") or {}
    sources.append((parent.get("subscription_details") or {}).get("metadata"))
    sources += [line.get("metadata") for line in (inv.get("lines") or {}).get("data") or []]
    for source in sources:
        for key, value in _str_dict(source).items():
            found.setdefault(key, value)
    return found


def invoice_from_stripe(
    inv: Mapping[str, Any], *, extra_metadata: Mapping[str, str] | None = None
) -> Invoice:
    """A Stripe invoice; ``extra_metadata`` (the subscription's) fills missing keys."""
    metadata = dict(extra_metadata or {})
    metadata.update(invoice_metadata(inv))
    customer_id = metadata.get(CUSTOMER_ID_KEY) or metadata.get(INTERLOCK_CUSTOMER_KEY)
    if not customer_id:
        raise MappingError(
            f"invoice {inv.get('id')} carries no Interlock customer ID in its metadata",
            field=CUSTOMER_ID_KEY,
            system="billing",
        )
    currency = str(_require(inv, "currency", "invoice"))
    subscription = inv.get("subscription") or (
        ((inv.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )
    try:
        return Invoice(
            invoice_id=str(_require(inv, "id", "invoice")),
            customer_id=customer_id,
            order_ref=metadata.get(ORDER_REF_KEY),
            subscription_id=str(subscription) if subscription else None,
            currency=currency,
            amount_due=from_minor_units(int(_require(inv, "amount_due", "invoice")), currency),
            amount_paid=from_minor_units(int(inv.get("amount_paid") or 0), currency),
            status=str(_require(inv, "status", "invoice")),
            number=inv.get("number"),
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
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, Mapping) or obj.get("object") != "invoice":
        raise MappingError(f"{kind} event carries no invoice object", system="billing")
    return invoice_from_stripe(obj)
