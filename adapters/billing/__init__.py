"""The billing platform (Stripe-shaped): outbound adapter and signed inbound webhooks."""

from ._adapter import BillingAdapter, plan_id_for
from ._form import encode_form, from_minor_units, to_minor_units
from ._mapping import (
    invoice_from_event,
    invoice_from_stripe,
    invoice_metadata,
    subscription_from_stripe,
)
from ._router import stripe_webhook_router
from ._signature import (
    RejectReason,
    StripeSignatureError,
    sign_stripe_payload,
    verify_stripe_signature,
)

__all__ = [
    "BillingAdapter",
    "RejectReason",
    "StripeSignatureError",
    "encode_form",
    "from_minor_units",
    "invoice_from_event",
    "invoice_from_stripe",
    "invoice_metadata",
    "plan_id_for",
    "sign_stripe_payload",
    "stripe_webhook_router",
    "subscription_from_stripe",
    "to_minor_units",
    "verify_stripe_signature",
]
