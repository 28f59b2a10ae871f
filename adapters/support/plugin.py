"""The support desk plug-in: the ``[support]`` settings section and the Zendesk adapter."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, SecretStr

from collector import Host, SystemInfo, require_settings

from ._zendesk import ZendeskAdapter

__all__ = ["INFO", "SupportPlugin", "SupportSettings", "plugin"]


class SupportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("support", "Support", "Zendesk", lane=40)


class SupportPlugin:
    """Installs the support desk (Zendesk)."""

    name = "support"
    after = ("demo",)
    sections: Mapping[str, type[BaseModel]] = {"support": SupportSettings}

    def __init__(self, *, connect: bool = True) -> None:
        #: False declares the system without connecting to it (a host that only
        #: reads a lineage: the dashboard tests, the benches).
        self.connect = connect

    async def install(self, host: Host) -> None:
        if not self.connect:
            host.add_system(INFO)
            return
        s = host.section("support", SupportSettings)
        url, email, token = require_settings(
            "support", url=s.url, email=s.email, api_token=s.api_token
        )
        adapter = ZendeskAdapter(url, email, token.get_secret_value())
        host.add_system(INFO, adapter)


plugin = SupportPlugin()
