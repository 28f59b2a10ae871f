"""The ServiceNow plug-in: the ``[servicenow]`` settings section and its adapter.

Installed when the flows' desk is ServiceNow (``[support] desk = "servicenow"``,
then its settings are required) or when it is configured anyway (``url`` set).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from collector import Host, SystemAdapter, SystemInfo, SystemPlugin, require_settings

from ..support.plugin import SupportSettings
from ._client import ServiceNowAdapter

__all__ = ["INFO", "ServiceNowPlugin", "ServiceNowSettings", "plugin"]


class ServiceNowSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description="the instance, e.g. https://acme.service-now.com")
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(
        None, description="OAuth client: with client_secret, bearer tokens replace Basic auth"
    )
    client_secret: SecretStr | None = None
    ca_file: str | None = Field(None, description="CA bundle to trust for the instance's TLS")


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("servicenow", "ServiceNow", "ServiceNow", lane=45)


class ServiceNowPlugin(SystemPlugin):
    """Installs the ServiceNow support desk."""

    info = INFO
    model = ServiceNowSettings

    async def install(self, host: Host) -> None:
        chosen = host.section("support", SupportSettings).desk == "servicenow"
        if self.connect and not chosen and not host.section("servicenow", self.model).url:
            return  # neither the chosen desk nor configured
        await super().install(host)

    async def open(self, host: Host, s: ServiceNowSettings) -> SystemAdapter:
        url, username, password = require_settings(
            "servicenow", url=s.url, username=s.username, password=s.password
        )
        return ServiceNowAdapter(
            url,
            username=username,
            password=password.get_secret_value(),
            client_id=s.client_id,
            client_secret=s.client_secret.get_secret_value() if s.client_secret else None,
            ca_file=s.ca_file,
        )


plugin = ServiceNowPlugin()
