"""The product-catalog plug-in: the ERP's catalog, its sync to the CRM and billing, and
the order pre-validation quote-to-cash runs against it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from collector import Host, Stage

from .._delivery import ingress_state
from .._retry import RetryPolicy
from ..flows import PREVALIDATION_KEY, OrderCheck, StepRunner
from ._checks import DEFAULT_TAXES, CatalogChecks
from ._erp import TrytonCatalog
from ._flow import SPEC, BillingCatalogPort, CatalogSync, CrmCatalogPort
from ._poller import CatalogPoller

__all__ = ["CatalogPlugin", "CatalogSettings", "plugin"]


class CatalogSettings(BaseModel):
    """``[catalog]``: where the ERP keeps the catalog and what an order must match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price_list: str = Field("Catalog", description="the ERP price list whose lines are prices")
    currency: str = Field("USD", description="the currency of the price list")
    poll_interval: float = Field(10.0, gt=0, description="seconds between catalog polls")
    taxes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_TAXES),
        description="country code -> the ERP tax an order to that country needs",
    )
    prevalidate: bool = Field(True, description="check orders against the catalog")


class CatalogPlugin:
    """Installs the product-catalog flow, its ERP poll and its pre-validation."""

    name = "catalog"
    after = ("erp", "crm", "billing")
    sections: Mapping[str, type[BaseModel]] = {"catalog": CatalogSettings}
    #: The catalog's SLA rules, for ``interlock rules export-prometheus`` without installing.
    rule_files = SPEC.rule_files

    def __init__(self, *, run: bool = True) -> None:
        self.run = run

    async def install(self, host: Host) -> None:
        if not self.run:
            host.declare_flow(SPEC)
            return
        s = host.section("catalog", CatalogSettings)
        erp = host.adapter("erp")
        rpc = getattr(erp, "rpc", None)
        if rpc is None:  # an ERP without a JSON-RPC channel: facts only
            host.declare_flow(SPEC)
            return
        catalog = TrytonCatalog(rpc, price_list=s.price_list, currency=s.currency)
        r = host.settings.retry
        policy = RetryPolicy(
            max_attempts=r.max_attempts,
            base_delay=r.base_delay,
            max_delay=r.max_delay,
            max_retry_after=r.max_retry_after,
        )
        flow = CatalogSync(
            host.bus,
            StepRunner(host.bus, policy),
            catalog=catalog,
            crm=cast(CrmCatalogPort, host.adapter("crm")),
            billing=cast(BillingCatalogPort, host.adapter("billing")),
        )
        host.add_flow(flow)
        _, positions = ingress_state(host)
        poller = CatalogPoller(catalog, host.bus, interval=s.poll_interval, positions=positions)
        host.add_component(poller, Stage.INGRESS, name="erp catalog poller")
        if s.prevalidate:
            checks: list[OrderCheck] = host.shared(PREVALIDATION_KEY, list)
            checks.append(CatalogChecks(catalog, taxes=s.taxes).check)


plugin = CatalogPlugin()
