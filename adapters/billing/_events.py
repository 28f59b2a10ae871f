"""Stripe event and invoice payloads as bounded models, checked before anything reads them.

A signed webhook (or an event read back from ``GET /v1/events``) is parsed here
first. Two reason classes come out of it, both answered 400 by the router:

=====================  ===================================================================
``invalid_payload``    not a Stripe event: ``id``/``type``/``created`` missing, of the
                       wrong type or out of range, ``data.object`` not an object
``unprocessable``      a Stripe event of a type we act on (``invoice.*``) whose object
                       does not fit the invoice shape (``lines`` a list, ``parent`` a
                       string, an amount that is not a bounded whole number, ...)
=====================  ===================================================================

Bounds follow Stripe's own documented limits where it has them (metadata: 50
keys, 40-character keys, 500-character values) and otherwise what the lineage
can hold: a timestamp between 2000 and 2100, an amount of at most 15 digits in
minor units (it fits ``DECIMAL(18, 2)`` in any currency). Unknown fields are
ignored, so new fields in Stripe's API versions do not break ingest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from tracing import ValidationError

from ._signature import RejectReason

__all__ = [
    "MAX_AMOUNT_MINOR",
    "MAX_CREATED",
    "MIN_CREATED",
    "StripeEvent",
    "StripeInvoice",
    "WebhookPayloadError",
    "parse_stripe_event",
    "parse_stripe_invoice",
]

#: 2000-01-01 and 2100-01-01 (unix seconds): anything outside is not a real event time.
MIN_CREATED = 946_684_800
MAX_CREATED = 4_102_444_800
#: 15 digits of minor units: fits DECIMAL(18, 2) for two- and zero-decimal currencies.
MAX_AMOUNT_MINOR = 10**15 - 1
MAX_LINES = 1_000

_Id = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]
_Text = Annotated[StrictStr, StringConstraints(max_length=500)]
_Type = Annotated[StrictStr, StringConstraints(min_length=1, max_length=100)]
_Currency = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
_Amount = Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT_MINOR)]
_Created = Annotated[StrictInt, Field(ge=MIN_CREATED, lt=MAX_CREATED)]
_MetaKey = Annotated[StrictStr, StringConstraints(max_length=40)]
_MetaValue = Annotated[StrictStr, StringConstraints(max_length=500)]
_Metadata = Annotated[dict[_MetaKey, _MetaValue | None], Field(max_length=50)]


class _Stripe(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class StripeEventData(_Stripe):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class StripeEvent(_Stripe):
    """The event envelope: what every Stripe event carries, whatever its type."""

    id: _Id
    type: _Type
    created: _Created
    data: StripeEventData
    object: Literal["event"] = "event"
    livemode: bool = False
    api_version: _Text | None = None


class StripeInvoiceLine(_Stripe):
    metadata: _Metadata | None = None


class StripeInvoiceLines(_Stripe):
    data: Annotated[list[StripeInvoiceLine], Field(max_length=MAX_LINES)] = []


class StripeSubscriptionDetails(_Stripe):
    metadata: _Metadata | None = None
    subscription: _Id | None = None


class StripeInvoiceParent(_Stripe):
    subscription_details: StripeSubscriptionDetails | None = None


class StripeInvoice(_Stripe):
    """The invoice fields Interlock reads, each bounded."""

    object: Literal["invoice"]
    id: _Id
    customer: _Id | None = None
    currency: _Currency
    amount_due: _Amount
    amount_paid: _Amount | None = None
    status: _Type
    subscription: _Id | None = None
    metadata: _Metadata | None = None
    lines: StripeInvoiceLines | None = None
    parent: StripeInvoiceParent | None = None
    number: _Text | None = None


class WebhookPayloadError(ValidationError):
    """A verified body that is not an event we can take; ``code`` is the reason class."""

    def __init__(self, code: RejectReason, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, system="billing")
        self.code = code


def _first_problem(exc: PydanticValidationError, prefix: str) -> tuple[str, str]:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    return where, f"{where}: {first['msg']}"


def parse_stripe_invoice(obj: Mapping[str, Any], *, where: str = "") -> StripeInvoice:
    """``obj`` as a bounded invoice; ``WebhookPayloadError`` (``unprocessable``) otherwise."""
    try:
        return StripeInvoice.model_validate(obj)
    except PydanticValidationError as exc:
        field, message = _first_problem(exc, where)
        raise WebhookPayloadError(
            RejectReason.UNPROCESSABLE, f"invoice does not fit: {message}", field=field
        ) from exc


def parse_stripe_event(raw: Mapping[str, Any]) -> StripeEvent:
    """``raw`` as a bounded Stripe event; its ``invoice.*`` object checked as an invoice.

    Raises ``WebhookPayloadError`` with ``code`` ``invalid_payload`` for a body
    that is not a Stripe event and ``unprocessable`` for an invoice event whose
    invoice does not fit.

    >>> parse_stripe_event({"id": "evt_1", "type": "customer.created",
    ...                     "created": 1780000000, "data": {"object": {}}}).type
    'customer.created'
    """
    try:
        event = StripeEvent.model_validate(raw)
    except PydanticValidationError as exc:
        field, message = _first_problem(exc, "")
        raise WebhookPayloadError(
            RejectReason.INVALID_PAYLOAD, f"not a Stripe event: {message}", field=field
        ) from exc
    if event.type.startswith("invoice."):
        parse_stripe_invoice(event.data.object, where="data.object")
    return event
