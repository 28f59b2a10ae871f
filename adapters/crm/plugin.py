"""The CRM plug-in: the ``[crm]`` settings section, the Salesforce adapter and the
poller that reads its opportunity change feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters import ingress_state
from collector import Host, Stage, SystemAdapter, SystemInfo, SystemPlugin, require_settings

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


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("crm", "CRM", "Salesforce", lane=0)


class CrmPlugin(SystemPlugin):
    """Installs the CRM (Salesforce) and its change-feed poller."""

    info = INFO
    model = CrmSettings

    async def open(self, host: Host, s: CrmSettings) -> SystemAdapter:
        url, token = require_settings(
            "crm", instance_url=s.instance_url, access_token=s.access_token
        )
        crm = SalesforceAdapter(url, token.get_secret_value(), verify=s.ca_file or True)
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
        return crm


plugin = CrmPlugin()
