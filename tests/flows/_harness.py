"""Quote-to-cash in one process: the embedded bus, the real ingest pipeline into a
``:memory:`` lineage, the flow over the in-memory systems of ``_fakes``, the
ingress (CRM change feed, billing webhooks) and the replay service.

Faults are switches on the fakes (``erp.down``, ``billing.rate_limited``); steps
retry without sleeping, so a whole schedule runs in milliseconds. ``settle()``
waits until the bus is idle and everything it carried is in the lineage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from adapters import DeliveryLedger, Invoice, RetryPolicy
from adapters.billing import BillingWebhookIngress
from adapters.crm import CrmPoller
from adapters.flows import STEPS, QuoteToCash, StepRunner
from collector import EmbeddedBus, Principal, Role
from collector.api import Metrics
from collector.lineage import AsyncLineage, Collector, LineageStore
from replay import ReplayService, Selection
from tracing import Event, correlation_id_for

from ._fakes import FakeBilling, FakeCrm, FakeErp, FakeSupport, order

OPERATOR = Principal("olga", Role.OPERATOR)
APPROVER = Principal("anna", Role.APPROVER)


async def _no_sleep(_: float) -> None:
    return None


class Change:
    """One row of the CRM's opportunity change feed."""

    def __init__(self, opp: str, modstamp: datetime) -> None:
        self.opportunity_id, self.modstamp, self.is_won = opp, modstamp, True
        self.account_name = "Acme GmbH"
        self.account_id, self.stage = "001A", "Closed Won"
        self.amount, self.currency = Decimal("398"), "USD"


class Feed:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    async def opportunity_changes(self, since: datetime) -> list[Change]:
        return [c for c in self.changes if c.modstamp > since]


def _invoice(stripe_event: dict[str, Any]) -> Invoice:
    obj = stripe_event["data"]["object"]
    return Invoice(
        invoice_id=obj["id"],
        customer_id="cus_1",
        subscription_id=obj["subscription"],
        currency="USD",
        amount_due=Decimal("398"),
        status="paid",
    )


class World:
    """The running flow and its systems; build it with :func:`world`."""

    def __init__(self) -> None:
        self.bus = EmbeddedBus(partitions=4)
        self.store = LineageStore(":memory:", flows=(STEPS,))
        self.lineage = AsyncLineage(self.store)
        self.collector = Collector(self.lineage, Metrics(CollectorRegistry()), flush_interval=0.02)
        self.crm, self.erp = FakeCrm(), FakeErp()
        self.billing, self.support = FakeBilling(), FakeSupport()
        self.flow = QuoteToCash(
            self.bus,
            StepRunner(self.bus, RetryPolicy(max_attempts=3), sleep=_no_sleep),
            crm=self.crm,
            erp=self.erp,
            billing=self.billing,
            support=self.support,
        )
        self.feed = Feed()
        ledger = DeliveryLedger()
        self.clock = datetime(2026, 5, 1, tzinfo=UTC)
        self.poller = CrmPoller(self.feed, self.bus, ledger=ledger, since=self.clock)
        self.ingress = BillingWebhookIngress(
            self.bus,
            invoice_from_event=_invoice,
            subscription_metadata=self.billing.get_subscription_metadata,
            ledger=ledger,
        )
        self.replay = ReplayService(
            self.lineage, self.bus, probe=self.flow.probe, rate_per_second=10_000.0
        )
        #: Every closed-won event the poller published, for redeliveries on the bus.
        self.triggers: list[Event] = []

    async def start(self) -> None:
        await self.lineage.open()
        self.collector.attach(self.bus)
        self.flow.attach()
        await self.replay.start()
        await self.bus.start()
        await self.collector.start()

    async def stop(self) -> None:
        await self.replay.stop()
        await self.bus.stop()
        await self.collector.stop()
        await self.lineage.close()

    async def settle(self) -> None:
        """Until the bus is idle and the collector has stored all it carried."""
        while True:
            await self.bus.drain()
            await self.collector.flush()
            if not self.bus.backlog() and not self.collector.pending:
                return

    async def close_deal(self, ref: str) -> str:
        """The CRM reports ``ref`` closed-won; its correlation ID."""
        self.crm.orders[ref] = order(ref)
        await self.deliver_again(ref)
        return correlation_id_for("crm", "opportunity", ref)

    async def deliver_again(self, ref: str) -> None:
        """The change feed carries ``ref`` (again) with a new modstamp."""
        self.clock += timedelta(seconds=1)
        self.feed.changes.append(Change(ref, self.clock))
        self.triggers.extend(await self.poller.poll_once())

    async def pay_invoice(self, ref: str, *, redeliver: bool = False) -> bool:
        """Billing invoices ``ref``'s subscription and sends ``invoice.paid`` (False
        if billing holds no subscription for it)."""
        sub = self.billing.subscriptions.get(ref)
        if sub is None:
            return False
        event_id, sub_id = f"evt_{sub.subscription_id}", sub.subscription_id
        for _ in range(2 if redeliver else 1):
            await self.ingress.on_event(
                {
                    "id": event_id,
                    "type": "invoice.paid",
                    "created": int(self.clock.timestamp()),
                    "data": {"object": {"id": f"in_{sub_id}", "subscription": sub_id}},
                }
            )
        return True

    async def replay_group(self, group: str) -> dict[str, Any] | None:
        """Request, approve and run a replay of the open dead letters of ``group``."""
        await self.settle()
        groups = {g["group_id"] for g in await self.replay.groups(Selection(states=("open",)))}
        if group not in groups:
            return None
        record = await self.replay.request(
            Selection(group=group, states=("open",)), OPERATOR, reason="system is back"
        )
        if record["state"] == "pending_approval":
            await self.replay.approve(record["replay_id"], APPROVER)
        async with asyncio.timeout(10):
            done = await self.replay.wait(record["replay_id"])
        await self.settle()
        return done


@asynccontextmanager
async def world() -> AsyncIterator[World]:
    w = World()
    await w.start()
    try:
        yield w
    finally:
        await w.stop()
