"""Local stand-ins and launchers for the demo landscape and the tests.

The launchers are imported on first use: the runtime imports this package, and
most of it never starts a server (the Salesforce one pulls in TLS tooling).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from collector.process import ManagedProcess, ManagedServer, free_port, wait_for_http

if TYPE_CHECKING:
    from .kafka import TansuBroker
    from .localstripe import LocalStripeServer
    from .salesforce import SalesforceSandbox
    from .servicenow import ServiceNowSandbox
    from .tryton import TrytonServer
    from .zendesk import ZendeskSandbox

__all__ = [
    "LocalStripeServer",
    "ManagedProcess",
    "ManagedServer",
    "SalesforceSandbox",
    "ServiceNowSandbox",
    "TansuBroker",
    "TrytonServer",
    "ZendeskSandbox",
    "free_port",
    "wait_for_http",
]

_LAZY = {
    "LocalStripeServer": ".localstripe",
    "SalesforceSandbox": ".salesforce",
    "ServiceNowSandbox": ".servicenow",
    "TansuBroker": ".kafka",
    "TrytonServer": ".tryton",
    "ZendeskSandbox": ".zendesk",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value
