"""The CRM plug-in: the ``[crm]`` settings section, the Salesforce adapter and the
poller that reads its opportunity change feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters import ingress_state
from collector import Host, Stage, SystemAdapter, SystemInfo, SystemPlugin, require_settings
from tracing import ConfigError

from ._auth import JwtBearer
from ._poller import CrmPoller
from ._salesforce import SalesforceAdapter

__all__ = ["INFO", "CrmPlugin", "CrmSettings", "open_adapter", "plugin"]


class CrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_url: str | None = None
    consumer_key: str | None = Field(
        None,
        description="the connected app's consumer key: set, the adapter signs in with the "
        "OAuth 2.0 JWT bearer flow (the default way)",
    )
    username: str | None = Field(None, description="the Salesforce user the app acts as (sub)")
    private_key_file: str | None = Field(
        None, description="PEM file of the connected app's RSA private key"
    )
    private_key: SecretStr | None = Field(
        None, description="the PEM private key itself, instead of private_key_file"
    )
    login_url: str | None = Field(
        None,
        description="token endpoint host and the assertion's audience (default: "
        "instance_url; https://login.salesforce.com or https://test.salesforce.com)",
    )
    session_seconds: float = Field(
        7200.0, gt=0, description="the org's session timeout; the session is renewed before it"
    )
    access_token: SecretStr | None = Field(
        None, description="a static session ID, used only when consumer_key is not set"
    )
    ca_file: str | None = Field(None, description="CA bundle to trust for the CRM's TLS")
    poll_interval: float = Field(2.0, gt=0)
    start_lookback: float = Field(
        300.0,
        gt=0,
        description="seconds before the first start a fresh installation reads the change "
        "feed from; later starts resume at the stored position",
    )


def _private_key(s: CrmSettings) -> str:
    if s.private_key is not None:
        return s.private_key.get_secret_value()
    if not s.private_key_file:
        raise ConfigError(
            "crm.private_key_file", "is required with crm.consumer_key (or crm.private_key)"
        )
    try:
        # Read once at install (a few hundred bytes), before any traffic.
        return Path(s.private_key_file).read_text()
    except OSError as exc:
        # The path is configuration, not a secret; the key's text never appears.
        raise ConfigError("crm.private_key_file", f"cannot be read: {type(exc).__name__}") from exc


def open_adapter(s: CrmSettings) -> SalesforceAdapter:
    """The adapter for ``s``: JWT bearer when ``consumer_key`` is set, else the static token."""
    verify: bool | str = s.ca_file or True
    if s.consumer_key:
        (url, username) = require_settings("crm", instance_url=s.instance_url, username=s.username)
        jwt = JwtBearer(
            login_url=s.login_url or url,
            consumer_key=s.consumer_key,
            username=username,
            private_key=_private_key(s),
            session_seconds=s.session_seconds,
        )
        return SalesforceAdapter(url, jwt=jwt, verify=verify)
    # Neither way configured: the error names consumer_key, the way to prefer.
    url, token = require_settings("crm", instance_url=s.instance_url, consumer_key=s.access_token)
    return SalesforceAdapter(url, token.get_secret_value(), verify=verify)


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("crm", "CRM", "Salesforce", lane=0)


class CrmPlugin(SystemPlugin):
    """Installs the CRM (Salesforce) and its change-feed poller."""

    info = INFO
    model = CrmSettings

    async def open(self, host: Host, s: CrmSettings) -> SystemAdapter:
        crm = open_adapter(s)
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
