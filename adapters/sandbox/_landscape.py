"""The demo landscape: the real ERP and billing emulator, the CRM and support
sandboxes (Zendesk and ServiceNow, both always: each is one small process), and
fault proxies in front of the ERP and billing, all on 127.0.0.1.

``Landscape.start()`` brings everything up and returns the connection settings
the runtime needs; ``stop()`` stops every process it started (safe twice).
"""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from ._faults import FaultProxy

__all__ = ["Landscape", "LandscapeEndpoints"]

log = logging.getLogger(__name__)


@dataclass
class LandscapeEndpoints:
    """How to reach each system of a running landscape (through the fault proxies)."""

    erp_url: str
    erp_database: str
    erp_user: str
    erp_password: str
    billing_url: str
    billing_api_key: str
    webhook_secret: str
    crm_url: str
    #: A static session for the demo's traffic (a sales user), not the adapter's.
    crm_token: str
    crm_ca_file: str
    #: The connected app the adapter signs in as (OAuth 2.0 JWT bearer).
    crm_consumer_key: str
    crm_username: str
    crm_private_key_file: str
    support_url: str
    support_email: str
    support_token: str
    servicenow_url: str
    servicenow_username: str
    servicenow_password: str
    servicenow_client_id: str
    servicenow_client_secret: str
    servicenow_ca_file: str
    #: Direct addresses, bypassing the proxies (for checks and set-up).
    direct: dict[str, str] = field(default_factory=dict)


class Landscape:
    """Starts the demo landscape's systems. ``webhook_url`` is where billing
    delivers its signed webhooks (the runtime's control API)."""

    def __init__(self, workdir: Path, *, webhook_url: str | None = None) -> None:
        self.workdir = workdir.resolve()
        self.webhook_url = webhook_url
        self.erp_proxy: FaultProxy | None = None
        self.billing_proxy: FaultProxy | None = None
        #: Between billing and Interlock's webhook endpoint, to inject redeliveries.
        self.webhook_proxy: FaultProxy | None = None
        self._stack: list[object] = []
        self.endpoints: LandscapeEndpoints | None = None

    def start(self) -> LandscapeEndpoints:
        # Imported here: the launchers pull in their servers' dependencies.
        from .localstripe import LocalStripeServer
        from .salesforce import SalesforceSandbox
        from .servicenow import ServiceNowSandbox
        from .tryton import TrytonServer
        from .zendesk import ZendeskSandbox

        for sub in ("tryton", "salesforce", "servicenow"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        log.info("starting Tryton (ERP), localstripe (billing) and the Salesforce, Zendesk and "
                 "ServiceNow sandboxes")  # fmt: skip
        servers = [
            TrytonServer(workdir=self.workdir / "tryton"),
            LocalStripeServer(),
            SalesforceSandbox(workdir=self.workdir / "salesforce"),
            ZendeskSandbox(),
            ServiceNowSandbox(workdir=self.workdir / "servicenow"),
        ]
        try:
            # Each is its own process on its own free port and folder: started side by
            # side, the landscape is ready when the slowest is (about a third of the time).
            # Every server is on the stack before it starts, so a failed start stops all.
            self._stack.extend(servers)
            with ThreadPoolExecutor(len(servers), thread_name_prefix="landscape") as pool:
                for future in [pool.submit(server.start) for server in servers]:
                    future.result()
            erp, billing, crm, support, servicenow = servers
            assert isinstance(erp, TrytonServer) and isinstance(billing, LocalStripeServer)
            assert isinstance(crm, SalesforceSandbox) and isinstance(support, ZendeskSandbox)
            assert isinstance(servicenow, ServiceNowSandbox)
            self.erp_proxy = FaultProxy(erp.url, name="ERP").start()
            self._stack.append(self.erp_proxy)
            self.billing_proxy = FaultProxy(billing.url, name="billing").start()
            self._stack.append(self.billing_proxy)
            webhook_secret = "whsec_" + secrets.token_hex(24)
            if self.webhook_url:
                target = urlsplit(self.webhook_url)
                self.webhook_proxy = FaultProxy(
                    f"{target.scheme}://{target.netloc}", name="Interlock webhooks"
                ).start()
                self._stack.append(self.webhook_proxy)
                billing.configure_webhook(f"{self.webhook_proxy.url}{target.path}", webhook_secret)
        except BaseException:
            self.stop()
            raise
        self.endpoints = LandscapeEndpoints(
            erp_url=self.erp_proxy.url + "/",
            erp_database=erp.database,
            erp_user=erp.user,
            erp_password=erp.password,
            billing_url=self.billing_proxy.url,
            billing_api_key=billing.api_key,
            webhook_secret=webhook_secret,
            crm_url=crm.url,
            crm_token=crm.token,
            crm_ca_file=str(crm.ca_file),
            crm_consumer_key=crm.consumer_key,
            crm_username=crm.username,
            crm_private_key_file=crm.jwt_key_file,
            support_url=support.url,
            support_email=support.email,
            support_token=support.api_token,
            servicenow_url=servicenow.url,
            servicenow_username=servicenow.username,
            servicenow_password=servicenow.password,
            servicenow_client_id=servicenow.client_id,
            servicenow_client_secret=servicenow.client_secret,
            servicenow_ca_file=servicenow.ca_file,
            direct={"erp": erp.url, "billing": billing.url},
        )
        return self.endpoints

    def stop(self) -> None:
        while self._stack:
            server = self._stack.pop()
            try:
                server.stop()  # type: ignore[attr-defined]
            # Stopping must go on through every server even if one fails to stop.
            except Exception:
                log.exception("failed to stop %r", server)

    def __enter__(self) -> LandscapeEndpoints:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
