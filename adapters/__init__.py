"""Adapters for each external system, the canonical business objects, and the flows."""

from ._canonical import (
    CANONICAL_OBJECTS,
    CANONICAL_VERSION,
    BillingInterval,
    CreditMemo,
    Customer,
    Invoice,
    OrderLine,
    Payment,
    Product,
    ProductPrice,
    SalesOrder,
    Subscription,
    SupportCase,
)
from ._delivery import DeliveryLedger, ingress_state
from ._http import (
    HttpAdapter,
    json_or_error,
    parse_retry_after,
    raise_for_response,
    translate_transport_error,
)
from ._positions import PositionStore, TimeCursor, positions_path_for
from ._retry import RetryPolicy, retry_call

__all__ = [
    "CANONICAL_OBJECTS",
    "CANONICAL_VERSION",
    "BillingInterval",
    "CreditMemo",
    "Customer",
    "DeliveryLedger",
    "HttpAdapter",
    "Invoice",
    "OrderLine",
    "Payment",
    "PositionStore",
    "Product",
    "ProductPrice",
    "RetryPolicy",
    "SalesOrder",
    "Subscription",
    "SupportCase",
    "TimeCursor",
    "ingress_state",
    "json_or_error",
    "parse_retry_after",
    "positions_path_for",
    "raise_for_response",
    "retry_call",
    "translate_transport_error",
]
