"""Business flows: they react to canonical events and drive the adapters."""

from ._ingress import BillingWebhookIngress, CrmPoller, DeliveryLedger
from ._ports import BillingPort, CrmPort, ErpPort, SupportPort
from ._positions import PositionStore, TimeCursor, positions_path_for
from ._quote_to_cash import (
    MONEY_STEPS,
    SPEC,
    STEPS,
    TRIGGER_KINDS,
    QuoteToCash,
    apply_corrections,
    prevalidate,
)
from ._steps import StepOutcome, StepRunner

__all__ = [
    "MONEY_STEPS",
    "SPEC",
    "STEPS",
    "TRIGGER_KINDS",
    "BillingPort",
    "BillingWebhookIngress",
    "CrmPoller",
    "CrmPort",
    "DeliveryLedger",
    "ErpPort",
    "PositionStore",
    "QuoteToCash",
    "StepOutcome",
    "StepRunner",
    "SupportPort",
    "TimeCursor",
    "apply_corrections",
    "positions_path_for",
    "prevalidate",
]
