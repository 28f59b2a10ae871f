"""The demo landscape plug-in: real Tryton and localstripe, the Salesforce, Zendesk
and ServiceNow sandboxes, fault proxies in front of the ERP and billing, and a
traffic generator.

Installed first when the demo is on (``[demo] enabled``, the default of ``make
run``): it starts the landscape and points the systems' settings sections at it,
so the system plug-ins after it find their URLs and credentials there. Off, it
installs nothing and every system must be configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, SecretStr

from adapters.billing.plugin import WEBHOOK_PATH, BillingSettings
from adapters.crm.plugin import CrmSettings
from adapters.erp.plugin import ErpSettings
from adapters.servicenow.plugin import ServiceNowSettings
from adapters.support.plugin import SupportSettings
from collector import Host, Settings, Stage, component

from ._landscape import Landscape, LandscapeEndpoints

__all__ = ["DemoPlugin", "plugin", "with_landscape"]


def with_landscape(s: Settings, ep: LandscapeEndpoints) -> Settings:
    """``s`` with the systems' sections pointed at a running landscape."""
    erp = s.section("erp", ErpSettings)
    billing = s.section("billing", BillingSettings)
    crm = s.section("crm", CrmSettings)
    support = s.section("support", SupportSettings)
    servicenow = s.section("servicenow", ServiceNowSettings)
    return (
        s.with_section(
            "erp",
            erp.model_copy(
                update={
                    "url": ep.erp_url,
                    "database": ep.erp_database,
                    "user": ep.erp_user,
                    "password": SecretStr(ep.erp_password),
                }
            ),
        )
        .with_section(
            "billing",
            billing.model_copy(
                update={
                    "api_base": ep.billing_url,
                    "api_key": SecretStr(ep.billing_api_key),
                    "webhook_secrets": [SecretStr(ep.webhook_secret)],
                    # localstripe takes one item per subscription.
                    "max_subscription_items": 1,
                    "bundle_lines": True,
                    # localstripe is the demo's test-mode billing: invoices get paid.
                    "attach_test_card": True,
                }
            ),
        )
        .with_section(
            "crm",
            crm.model_copy(
                update={
                    "instance_url": ep.crm_url,
                    # The adapter signs in as the connected app: the sandbox trusts the
                    # certificate of this key pair (generated with the sandbox).
                    "consumer_key": ep.crm_consumer_key,
                    "username": ep.crm_username,
                    "private_key_file": ep.crm_private_key_file,
                    "access_token": None,
                    "ca_file": ep.crm_ca_file,
                }
            ),
        )
        .with_section(
            "support",
            support.model_copy(
                update={
                    "url": ep.support_url,
                    "email": ep.support_email,
                    "api_token": SecretStr(ep.support_token),
                }
            ),
        )
        .with_section(
            "servicenow",
            servicenow.model_copy(
                update={
                    "url": ep.servicenow_url,
                    "username": ep.servicenow_username,
                    "password": SecretStr(ep.servicenow_password),
                    # The demo speaks OAuth (the password grant), as a production install would.
                    "client_id": ep.servicenow_client_id,
                    "client_secret": SecretStr(ep.servicenow_client_secret),
                    "ca_file": ep.servicenow_ca_file,
                }
            ),
        )
    )


class DemoPlugin:
    """Starts the demo landscape and its traffic when the host runs the demo."""

    name = "demo"
    after: tuple[str, ...] = ()
    sections: Mapping[str, type[BaseModel]] = {}

    async def install(self, host: Host) -> None:
        if not host.demo:
            return
        s = host.settings
        landscape = Landscape(Path(s.demo.workdir), webhook_url=host.api_url + WEBHOOK_PATH)

        async def stop_landscape() -> None:
            await asyncio.to_thread(landscape.stop)

        # Registered before it starts: a landscape that fails half-way is still stopped.
        host.add_component(component("demo landscape", stop=stop_landscape), Stage.LANDSCAPE)
        try:
            ep = await asyncio.to_thread(landscape.start)
        except BaseException:
            await stop_landscape()
            raise
        host.settings = s = with_landscape(s, ep)
        crm = s.section("crm", CrmSettings)
        assert crm.instance_url

        from ..catalog import TrytonCatalog
        from ..erp import TrytonAdapter
        from ._traffic import TrafficGenerator

        # The catalog manager's price changes, straight into the ERP (not through Interlock).
        catalog_erp = TrytonAdapter(ep.direct["erp"], ep.erp_database, ep.erp_user, ep.erp_password)
        host.add_component(
            component("demo catalog manager", stop=catalog_erp.aclose), Stage.LANDSCAPE
        )
        traffic = TrafficGenerator(
            crm.instance_url,
            ep.crm_token,  # the traffic is a sales user's, with its own session
            ca_file=crm.ca_file,
            rate_per_minute=s.demo.rate_per_minute,
            faults=s.demo.faults,
            seed=s.demo.seed,
            price_change=TrytonCatalog(catalog_erp.rpc).set_price,
            proxies={
                name: proxy
                for name, proxy in (
                    ("erp", landscape.erp_proxy),
                    ("billing", landscape.billing_proxy),
                    ("webhooks", landscape.webhook_proxy),
                )
                if proxy is not None
            },
        )
        host.add_component(traffic, Stage.TRAFFIC, name="demo traffic")
        if s.demo.faults:
            from ._silent import SilentFaults

            # Behind Interlock's back: only reconciliation finds these.
            silent = SilentFaults(
                erp=(ep.direct["erp"], ep.erp_database, ep.erp_user, ep.erp_password),
                billing_url=ep.direct["billing"],
                billing_key=ep.billing_api_key,
                webhooks=landscape.webhook_proxy,
            )
            host.add_component(silent, Stage.TRAFFIC, name="demo silent faults")


plugin = DemoPlugin()
