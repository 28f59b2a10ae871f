"""Business flows: they react to canonical events and drive the adapters.

The events they react to come in through each system's own ingress (the CRM poller in
``adapters.crm``, the billing webhook in ``adapters.billing``)."""

from ._ports import BillingPort, CrmPort, ErpPort, SupportPort
from ._quote_to_cash import (
    ENTITLEMENT_KEY_PREFIX,
    MONEY_STEPS,
    PREVALIDATION_KEY,
    SPEC,
    STEPS,
    TRIGGER_KINDS,
    OrderCheck,
    QuoteToCash,
    apply_corrections,
    entitlement_key,
    prevalidate,
)
from ._steps import StepOutcome, StepRunner

__all__ = [
    "ENTITLEMENT_KEY_PREFIX",
    "MONEY_STEPS",
    "PREVALIDATION_KEY",
    "SPEC",
    "STEPS",
    "TRIGGER_KINDS",
    "BillingPort",
    "CrmPort",
    "ErpPort",
    "OrderCheck",
    "QuoteToCash",
    "StepOutcome",
    "StepRunner",
    "SupportPort",
    "apply_corrections",
    "entitlement_key",
    "prevalidate",
]
