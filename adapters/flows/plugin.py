"""The quote-to-cash plug-in: the flow on the host's bus, driving the four systems."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from pydantic import BaseModel

from collector import Host, Stage

from .._delivery import ingress_state
from .._retry import RetryPolicy
from ..support.plugin import SupportSettings
from ._credit_release import CreditFeed, CreditReleaser
from ._holds_api import holds_router
from ._ports import BillingPort, CrmPort, ErpPort, SupportPort
from ._quote_to_cash import PREVALIDATION_KEY, SPEC, QuoteToCash
from ._sale_states import SaleFeed, SaleStatePoller
from ._steps import StepRunner

__all__ = ["QuoteToCashPlugin", "plugin"]


class QuoteToCashPlugin:
    """Installs the quote-to-cash flow; needs the crm, erp and billing systems and the
    support desk ``[support] desk`` chooses (Zendesk's ``support`` or ``servicenow``).

    ``run=False`` declares the flow's facts (steps, kinds, money steps) without
    running it: for a host that only reads a lineage the flow wrote.
    """

    name = "quote_to_cash"
    after = ("crm", "erp", "billing", "support", "servicenow", "catalog")
    sections: Mapping[str, type[BaseModel]] = {}
    #: The flow's own SLA rule files (credit holds), declared for ``interlock rules
    #: export-prometheus``; installing the flow adds them through its spec.
    rule_files = SPEC.rule_files

    def __init__(
        self,
        *,
        run: bool = True,
        sale_state_interval: float = 5.0,
        credit_hold_interval: float = 30.0,
    ) -> None:
        self.run = run
        self.sale_state_interval = sale_state_interval
        self.credit_hold_interval = credit_hold_interval

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
        erp = host.adapter("erp")
        flow = QuoteToCash(
            host.bus,
            StepRunner(host.bus, policy),
            crm=cast(CrmPort, host.adapter("crm")),
            erp=cast(ErpPort, erp),
            billing=cast(BillingPort, host.adapter("billing")),
            support=cast(SupportPort, host.adapter(desk)),
            # Checks other plug-ins add (the catalog's effective-dated prices).
            checks=host.shared(PREVALIDATION_KEY, list),
        )
        host.add_flow(flow)
        # The ERP's later sale states (processing, done, cancelled) travel to the CRM
        # through a poll; an ERP adapter without a change feed gets none.
        if hasattr(erp, "sale_changes"):
            _, positions = ingress_state(host)
            poller = SaleStatePoller(
                cast(SaleFeed, erp),
                host.bus,
                interval=self.sale_state_interval,
                positions=positions,
            )
            host.add_component(poller, Stage.INGRESS, name="erp sale-state poller")
        # Held orders are released when the ERP raises their party's credit limit.
        if hasattr(erp, "credit_position"):
            releaser = CreditReleaser(
                cast(CreditFeed, erp), host.bus, host.lineage, interval=self.credit_hold_interval
            )
            host.add_component(releaser, Stage.INGRESS, name="credit-hold releaser")
        # A finance override of a hold, under four eyes, audited in replay's trail.
        host.add_router(holds_router(host.lineage, host.bus, host.audit))


plugin = QuoteToCashPlugin()
