"""The ERP plug-in: the ``[erp]`` settings section and the Tryton adapter."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr

from collector import Host, SystemAdapter, SystemInfo, SystemPlugin, require_settings

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


class ErpPlugin(SystemPlugin):
    """Installs the ERP system (Tryton over JSON-RPC)."""

    info = INFO
    model = ErpSettings

    async def open(self, host: Host, s: ErpSettings) -> SystemAdapter:
        url, password = require_settings("erp", url=s.url, password=s.password)
        adapter = TrytonAdapter(url, s.database, s.user, password.get_secret_value())
        return adapter


plugin = ErpPlugin()
