"""The support desk plug-in: the ``[support]`` settings section and the Zendesk adapter."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr

from collector import Host, SystemAdapter, SystemInfo, SystemPlugin, require_settings

from ._zendesk import ZendeskAdapter

__all__ = ["INFO", "SupportPlugin", "SupportSettings", "plugin"]


class SupportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("support", "Support", "Zendesk", lane=40)


class SupportPlugin(SystemPlugin):
    """Installs the support desk (Zendesk)."""

    info = INFO
    model = SupportSettings

    async def open(self, host: Host, s: SupportSettings) -> SystemAdapter:
        url, email, token = require_settings(
            "support", url=s.url, email=s.email, api_token=s.api_token
        )
        adapter = ZendeskAdapter(url, email, token.get_secret_value())
        return adapter


plugin = SupportPlugin()
