"""The customer-master plug-in: the ``[customers]`` section, the golden records, the
change-request and stewardship routes, and the change watcher.

See docs/customer-master.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from adapters._retry import RetryPolicy
from adapters.flows import StepRunner
from adapters.support.plugin import SupportSettings
from collector import Host, Stage

from ._api import customers_router
from ._ownership import load_matrix
from ._service import CustomerMaster
from ._systems import CustomerSystems
from ._watcher import CustomerWatcher

__all__ = ["CustomersPlugin", "CustomersSettings", "plugin"]

log = logging.getLogger(__name__)


class CustomersSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The ownership matrix (YAML); empty: the shipped default
    #: (``adapters/customers/ownership.yaml``).
    ownership_file: str = ""
    #: Seconds between change polls of the four systems; 0 turns the watcher off.
    poll_interval: float = Field(30.0, ge=0)
    #: Each poll reads back this far before the last one (the systems stamp the
    #: transaction's start, and clocks differ).
    overlap_seconds: float = Field(5.0, ge=0)


class CustomersPlugin:
    """Installs the customer master over the CRM, ERP, billing and support adapters."""

    name = "customers"
    after = ("crm", "erp", "billing", "support", "servicenow", "replay")
    sections: Mapping[str, type[BaseModel]] = {"customers": CustomersSettings}

    async def install(self, host: Host) -> None:
        s = host.section("customers", CustomersSettings)
        matrix = load_matrix(s.ownership_file or None)
        desk = host.section("support", SupportSettings).desk_system
        missing = [n for n in ("erp", "billing", "crm", desk) if n not in host.adapter_systems]
        if missing:
            # A host whose systems are declared but not connected (a reading host): no
            # customer master, and the other plug-ins install as before.
            log.warning("customer master not installed: no %s adapter", ", ".join(missing))
            return
        systems = CustomerSystems(
            erp=host.adapter("erp"),
            billing=host.adapter("billing"),
            crm=host.adapter("crm"),
            support=host.adapter(desk),
        )
        r = host.settings.retry
        policy = RetryPolicy(
            max_attempts=r.max_attempts,
            base_delay=r.base_delay,
            max_delay=r.max_delay,
            max_retry_after=r.max_retry_after,
        )
        master = CustomerMaster(
            host.lineage,
            host.bus,
            StepRunner(host.bus, policy),
            systems,
            matrix,
            audit=host.audit if host.auditor is not None else None,
        )
        host.shared("customers.master", lambda: master)
        host.add_component(master, Stage.SERVICE, name="customers")
        host.add_router(customers_router(master, host.lineage))
        if s.poll_interval > 0:
            watcher = CustomerWatcher(master, interval=s.poll_interval, overlap=s.overlap_seconds)
            host.add_component(watcher, Stage.INGRESS, name="customer watcher")


plugin = CustomersPlugin()
