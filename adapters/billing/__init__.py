"""The billing platform (Stripe-shaped): outbound adapter and signed inbound webhooks."""

from ._adapter import BillingAdapter, plan_id_for
from ._events import (
    StripeEvent,
    StripeInvoice,
    WebhookPayloadError,
    parse_stripe_event,
    parse_stripe_invoice,
)
from ._form import encode_form, from_minor_units, to_minor_units
from ._ingress import BillingWebhookIngress
from ._mapping import (
    event_invoice_metadata,
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
    "BillingWebhookIngress",
    "RejectReason",
    "StripeEvent",
    "StripeInvoice",
    "StripeSignatureError",
    "WebhookPayloadError",
    "encode_form",
    "event_invoice_metadata",
    "from_minor_units",
    "invoice_from_event",
    "invoice_from_stripe",
    "invoice_metadata",
    "parse_stripe_event",
    "parse_stripe_invoice",
    "plan_id_for",
    "sign_stripe_payload",
    "stripe_webhook_router",
    "subscription_from_stripe",
    "to_minor_units",
    "verify_stripe_signature",
]
