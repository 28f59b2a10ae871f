"""The ERP plug-in: the ``[erp]`` settings section and the Tryton adapter."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, SecretStr

from collector import Host, SystemInfo, require_settings

from ._adapter import TrytonAdapter

__all__ = ["INFO", "ErpPlugin", "ErpSettings", "plugin"]


class ErpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    database: str = "erp"
    user: str = "admin"
    password: SecretStr | None = None


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("erp", "ERP", "Tryton", lane=20)


class ErpPlugin:
    """Installs the ERP system (Tryton over JSON-RPC)."""

    name = "erp"
    after = ("demo",)
    sections: Mapping[str, type[BaseModel]] = {"erp": ErpSettings}

    def __init__(self, *, connect: bool = True) -> None:
        #: False declares the system without connecting to it (a host that only
        #: reads a lineage: the dashboard tests, the benches).
        self.connect = connect

    async def install(self, host: Host) -> None:
        if not self.connect:
            host.add_system(INFO)
            return
        s = host.section("erp", ErpSettings)
        url, password = require_settings("erp", url=s.url, password=s.password)
        adapter = TrytonAdapter(url, s.database, s.user, password.get_secret_value())
        host.add_system(INFO, adapter)


plugin = ErpPlugin()
