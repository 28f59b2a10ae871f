"""The support desk plug-in: the ``[support]`` settings section and the Zendesk adapter.

``[support] desk`` (``INTERLOCK_SUPPORT_DESK``) chooses the desk the flows write to:
``zendesk`` (this plug-in's system, ``support``) or ``servicenow`` (the
``servicenow`` plug-in's). Zendesk is then only required when it is the desk.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from collector import Host, SystemAdapter, SystemInfo, SystemPlugin, require_settings

from ._zendesk import ZendeskAdapter

__all__ = ["DESK_SYSTEMS", "INFO", "SupportPlugin", "SupportSettings", "plugin"]

Desk = Literal["zendesk", "servicenow"]

#: The system each desk's adapter is installed as (the name its steps carry in the lineage).
DESK_SYSTEMS: dict[str, str] = {"zendesk": "support", "servicenow": "servicenow"}


class SupportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    desk: Desk = Field(
        "zendesk", description="the support desk the flows write to: zendesk or servicenow"
    )
    url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None

    @property
    def desk_system(self) -> str:
        """The system name of the chosen desk's adapter."""
        return DESK_SYSTEMS[self.desk]


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("support", "Support", "Zendesk", lane=40)


class SupportPlugin(SystemPlugin):
    """Installs the support desk (Zendesk)."""

    info = INFO
    model = SupportSettings

    async def install(self, host: Host) -> None:
        s = host.section("support", SupportSettings)
        if self.connect and s.desk != "zendesk" and not s.url:
            return  # another desk is chosen and Zendesk is not configured: nothing to install
        await super().install(host)

    async def open(self, host: Host, s: SupportSettings) -> SystemAdapter:
        url, email, token = require_settings(
            "support", url=s.url, email=s.email, api_token=s.api_token
        )
        adapter = ZendeskAdapter(url, email, token.get_secret_value())
        return adapter


plugin = SupportPlugin()
