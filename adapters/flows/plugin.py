"""The quote-to-cash plug-in: the flow on the host's bus, driving the four systems."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from pydantic import BaseModel

from collector import Host

from .._retry import RetryPolicy
from ..support.plugin import SupportSettings
from ._ports import BillingPort, CrmPort, ErpPort, SupportPort
from ._quote_to_cash import SPEC, QuoteToCash
from ._steps import StepRunner

__all__ = ["QuoteToCashPlugin", "plugin"]


class QuoteToCashPlugin:
    """Installs the quote-to-cash flow; needs the crm, erp and billing systems and the
    support desk ``[support] desk`` chooses (Zendesk's ``support`` or ``servicenow``).

    ``run=False`` declares the flow's facts (steps, kinds, money steps) without
    running it: for a host that only reads a lineage the flow wrote.
    """

    name = "quote_to_cash"
    after = ("crm", "erp", "billing", "support", "servicenow")
    sections: Mapping[str, type[BaseModel]] = {}

    def __init__(self, *, run: bool = True) -> None:
        self.run = run

    async def install(self, host: Host) -> None:
        if not self.run:
            host.declare_flow(SPEC)
            return
        r = host.settings.retry
        policy = RetryPolicy(
            max_attempts=r.max_attempts,
            base_delay=r.base_delay,
            max_delay=r.max_delay,
            max_retry_after=r.max_retry_after,
        )
        desk = host.section("support", SupportSettings).desk_system
        flow = QuoteToCash(
            host.bus,
            StepRunner(host.bus, policy),
            crm=cast(CrmPort, host.adapter("crm")),
            erp=cast(ErpPort, host.adapter("erp")),
            billing=cast(BillingPort, host.adapter("billing")),
            support=cast(SupportPort, host.adapter(desk)),
        )
        host.add_flow(flow)


plugin = QuoteToCashPlugin()
