"""The billing plug-in: the ``[billing]`` settings section, the billing adapter, its
signed webhook endpoint and the catch-up read of its events API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters import ingress_state
from collector import (
    Host,
    Stage,
    SystemAdapter,
    SystemInfo,
    SystemPlugin,
    component,
    require_settings,
)

from ._adapter import BillingAdapter
from ._events import parse_stripe_event
from ._ingress import BillingWebhookIngress
from ._mapping import event_invoice_metadata, invoice_from_event
from ._router import stripe_webhook_router

__all__ = ["INFO", "WEBHOOK_PATH", "BillingPlugin", "BillingSettings", "plugin"]

#: Where billing posts its webhooks (under the control API).
WEBHOOK_PATH = "/webhooks/stripe"


class BillingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_base: str | None = None
    api_key: SecretStr | None = None
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    max_subscription_items: int = Field(20, ge=1, description="items one subscription takes")
    bundle_lines: bool = Field(
        False, description="bill an order with more lines than that as one bundled plan"
    )
    attach_test_card: bool = Field(
        False,
        description="give new customers Stripe's pm_card_visa test card (test mode and the "
        "demo landscape only; never against a real billing platform)",
    )
    catch_up_interval: float = Field(
        60.0,
        gt=0,
        description="seconds between reads of the billing events API for events whose "
        "webhook never arrived (also read once at every start)",
    )
    start_lookback: float = Field(
        300.0,
        gt=0,
        description="seconds before the first start a fresh installation reads billing's "
        "events API from; later starts resume at the stored position",
    )


#: The system as the explorer and the adapters page show it.
INFO = SystemInfo("billing", "Billing", "Stripe", lane=30)


class BillingPlugin(SystemPlugin):
    """Installs billing (Stripe-shaped), its webhook endpoint and its catch-up."""

    info = INFO
    model = BillingSettings
    after = ("demo", "crm")

    async def open(self, host: Host, s: BillingSettings) -> SystemAdapter:
        api_base, api_key, _ = require_settings(
            "billing", api_base=s.api_base, api_key=s.api_key, webhook_secrets=s.webhook_secrets
        )
        billing = BillingAdapter(
            api_base,
            api_key.get_secret_value(),
            max_subscription_items=s.max_subscription_items,
            bundle_lines=s.bundle_lines,
            attach_test_card=s.attach_test_card,
        )
        ledger, positions = ingress_state(host)
        webhooks = BillingWebhookIngress(
            host.bus,
            invoice_from_event=invoice_from_event,
            subscription_metadata=billing.get_subscription_metadata,
            event_metadata=event_invoice_metadata,
            ledger=ledger,
            positions=positions,
            parse_event=parse_stripe_event,
            since=datetime.now(UTC) - timedelta(seconds=s.start_lookback),
        )
        host.shared("billing.webhooks", lambda: webhooks)
        metrics = host.metrics

        async def on_rejected(code: str, detail: str) -> None:
            if metrics is not None:
                metrics.webhook_rejected.labels(system="billing", reason=code).inc()
            await webhooks.on_rejected(code, detail)

        host.add_router(
            stripe_webhook_router(
                secrets=[x.get_secret_value() for x in s.webhook_secrets],
                on_event=webhooks.on_event,
                on_rejected=on_rejected,
            )
        )

        async def catch_up() -> None:
            await webhooks.start_catch_up(billing, s.catch_up_interval)

        host.add_component(
            component("billing webhooks", start=catch_up, stop=webhooks.stop), Stage.INGRESS
        )
        return billing


plugin = BillingPlugin()
