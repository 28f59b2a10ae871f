"""The CRM plug-in: the ``[crm]`` settings section, the Salesforce adapter and the
poller that reads its opportunity change feed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters import DeliveryLedger, PositionStore, positions_path_for
from collector import Host, Stage, SystemInfo, require_settings

from ._poller import CrmPoller
from ._salesforce import SalesforceAdapter

__all__ = ["INFO", "CrmPlugin", "CrmSettings", "plugin"]


class CrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_url: str | None = None
    access_token: SecretStr | None = None
    ca_file: str | None = Field(None, description="CA bundle to trust for the CRM's TLS")
    poll_interval: float = Field(2.0, gt=0)
    start_lookback: float = Field(
        300.0,
        gt=0,
        description="seconds before the first start a fresh installation reads the change "
        "feed from; later starts resume at the stored position",
    )


def ingress_state(host: Host) -> tuple[DeliveryLedger, PositionStore]:
    """The delivery ledger and the poll positions the CRM and billing ingress share
    (positions live beside the lineage, so an outage of any length resumes)."""
    ledger = host.shared("ingress.ledger", DeliveryLedger)
    positions = host.shared(
        "ingress.positions",
        lambda: PositionStore(positions_path_for(host.settings.lineage.path)).load(),
    )
    return ledger, positions


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("crm", "CRM", "Salesforce", lane=0)


class CrmPlugin:
    """Installs the CRM (Salesforce) and its change-feed poller."""

    name = "crm"
    after = ("demo",)
    sections: Mapping[str, type[BaseModel]] = {"crm": CrmSettings}

    def __init__(self, *, connect: bool = True) -> None:
        #: False declares the system without connecting to it (a host that only
        #: reads a lineage: the dashboard tests, the benches).
        self.connect = connect

    async def install(self, host: Host) -> None:
        if not self.connect:
            host.add_system(INFO)
            return
        s = host.section("crm", CrmSettings)
        url, token = require_settings(
            "crm", instance_url=s.instance_url, access_token=s.access_token
        )
        crm = SalesforceAdapter(url, token.get_secret_value(), verify=s.ca_file or True)
        host.add_system(INFO, crm)
        ledger, positions = ingress_state(host)
        poller = CrmPoller(
            crm,
            host.bus,
            ledger=ledger,
            interval=s.poll_interval,
            positions=positions,
            since=datetime.now(UTC) - timedelta(seconds=s.start_lookback),
        )
        host.add_component(poller, Stage.INGRESS, name="crm poller")


plugin = CrmPlugin()
