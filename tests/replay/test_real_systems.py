"""Replays against a real Tryton ERP and a real localstripe.

The flow that reacts to a replayed closed-won event is a minimal stand-in
(``MiniOrderFlow``) making the same idempotent calls the quote-to-cash flow makes
(``TrytonAdapter.create_sale``, ``BillingAdapter.create_subscription``) and
emitting the step's outcome; it keeps these tests independent of the CRM the
full flow reloads orders from.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from replay_support import APPROVER, APPROVER_2, OPERATOR, failed_order, make_order, seed

from adapters._canonical import SalesOrder
from adapters.billing import BillingAdapter
from adapters.erp import TrytonAdapter
from adapters.erp._rpc import TrytonRpc
from adapters.sandbox.localstripe import LocalStripeServer
from adapters.sandbox.tryton import TrytonServer, build_template
from collector import EmbeddedBus
from collector.process import free_port
from replay import DeadLetterState, Selection
from tracing import ErrorInfo, Event, InterlockError, Status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tryton() -> Iterator[TrytonServer]:
    build_template()
    with TrytonServer() as server:
        yield server


@pytest.fixture(scope="module")
def stripe() -> Iterator[LocalStripeServer]:
    with LocalStripeServer() as server:
        yield server


@pytest.fixture
async def erp(tryton: TrytonServer) -> AsyncIterator[TrytonAdapter]:
    async with TrytonAdapter(tryton.url, tryton.database, tryton.user, tryton.password) as a:
        yield a


@pytest.fixture
async def billing(stripe: LocalStripeServer) -> AsyncIterator[BillingAdapter]:
    async with BillingAdapter(stripe.url, stripe.api_key, attach_test_card=True) as adapter:
        yield adapter


class MiniOrderFlow:
    """Creates the ERP sale and the subscription for a replayed closed-won event."""

    def __init__(self, bus: EmbeddedBus, erp: TrytonAdapter, billing: BillingAdapter) -> None:
        self.bus = bus
        self.erp = erp
        self.billing = billing
        self.handled = 0
        self.created: list[tuple[bool, bool]] = []

    def attach(self) -> None:
        self.bus.subscribe("mini-flow", self.handle, kinds=frozenset({"opportunity.closed_won"}))

    async def handle(self, event: Event) -> None:
        if event.status is not Status.REPLAYED:
            return
        self.handled += 1
        order = SalesOrder.model_validate(event.payload["order"])
        try:
            sale, sale_created = await self.erp.create_sale(
                order, idempotency_key=event.idempotency_key
            )
            customer = await self.billing.ensure_customer(
                order.customer, idempotency_key=f"customer:{order.customer.customer_id}"
            )
            _, sub_created = await self.billing.create_subscription(
                order,
                customer,
                idempotency_key=f"subscription:{order.order_ref}",
                metadata={"correlation_id": event.correlation_id},
            )
        except InterlockError as exc:
            await self.bus.publish(self._outcome(event, error=ErrorInfo.from_exception(exc)))
            return
        self.created.append((sale_created, sub_created))
        await self.bus.publish(self._outcome(event, payload={"erp_sale_id": sale.id}))

    @staticmethod
    def _outcome(
        cause: Event, *, error: ErrorInfo | None = None, payload: dict[str, Any] | None = None
    ) -> Event:
        return Event(
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            idempotency_key=f"erp.order.create:{cause.entity_id}",
            source="interlock",
            target="erp",
            kind="order.created",
            step="erp.order.create",
            entity_type="sales_order",
            entity_id=cause.entity_id,
            status=Status.DEAD_LETTERED if error else Status.OK,
            error=error,
            payload=payload or {},
            amount=cause.amount,
            currency=cause.currency,
            customer_id=cause.customer_id,
            replay_id=cause.replay_id,
        )


def erp_probe(erp: TrytonAdapter):  # type: ignore[no-untyped-def]
    async def probe(dead: Event) -> bool | None:
        return await erp.find_sale(dead.entity_id) is not None

    return probe


async def count_sales(tryton: TrytonServer, reference: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        rpc = TrytonRpc(tryton.url, tryton.database, tryton.user, tryton.password, client=client)
        found = await rpc.call("model.sale.sale.search", [["reference", "=", reference]])
        return len(found)


async def count_subscriptions(stripe: LocalStripeServer, order_ref: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            f"{stripe.url}/v1/subscriptions",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {stripe.api_key}"},
        )
        response.raise_for_status()
        return sum(
            1
            for sub in response.json()["data"]
            if sub.get("metadata", {}).get("order_ref") == order_ref
        )


async def test_five_replays_leave_one_sale_and_one_subscription(
    lineage, bus, make_service, erp, billing, tryton, stripe
) -> None:
    order = make_order()
    trigger, dead = failed_order(order)
    await seed(lineage, (trigger, dead))
    flow = MiniOrderFlow(bus, erp, billing)
    flow.attach()
    service = await make_service(probe=erp_probe(erp), concurrency=4)
    one = Selection(event_id=dead.event_id)

    # Three replays requested while the dead letter is open, approved and run at once.
    records = await asyncio.gather(
        *(service.request(one, OPERATOR, reason=f"retry {n}") for n in range(3))
    )
    assert all(r["state"] == "pending_approval" for r in records)
    await asyncio.gather(*(service.approve(r["replay_id"], APPROVER) for r in records))
    done = await asyncio.wait_for(
        asyncio.gather(*(service.wait(r["replay_id"]) for r in records)), 60
    )
    assert [d["state"] for d in done] == ["completed"] * 3
    assert flow.handled == 3  # every one was really re-delivered

    # Two more, one after the other, as an explicit redo of the resolved step on a
    # service without a probe, so nothing is skipped before the target sees it.
    redo = await make_service(probe=None)
    again = Selection(event_id=dead.event_id, states=(DeadLetterState.RESOLVED,))
    for n in range(2):
        record = await redo.request(again, OPERATOR, reason=f"redo {n}")
        assert record["to_deliver"] == 1
        await redo.approve(record["replay_id"], APPROVER_2)
        finished = await asyncio.wait_for(redo.wait(record["replay_id"]), 60)
        assert finished["state"] == "completed"
    assert flow.handled == 5

    assert await count_sales(tryton, order.order_ref) == 1
    assert await count_subscriptions(stripe, order.order_ref) == 1
    assert sorted(flow.created) == [(False, False)] * 4 + [(True, True)]
    letter = await service.dead_letter(dead.event_id)
    assert letter["state"] == "resolved"

    # A dry run now finds the sale in the ERP and would skip it.
    plan = await service.dry_run(Selection(event_id=dead.event_id, states=("resolved",)))
    assert plan.items[0].action == "skip" and plan.items[0].target_holds is True


async def test_a_replay_during_an_erp_outage_fails_cleanly(
    lineage, bus, make_service, billing, tryton
) -> None:
    order = make_order()
    trigger, dead = failed_order(order)
    await seed(lineage, (trigger, dead))
    down = f"http://127.0.0.1:{free_port()}/"  # the ERP is still down: nothing listens
    async with TrytonAdapter(down, "erp", "admin", "x", timeout=2.0) as dead_erp:
        flow = MiniOrderFlow(bus, dead_erp, billing)
        flow.attach()
        service = await make_service(probe=erp_probe(dead_erp))
        plan = await service.dry_run(Selection(event_id=dead.event_id))
        assert plan.items[0].action == "deliver" and plan.items[0].target_holds is None
        record = await service.request(Selection(event_id=dead.event_id), OPERATOR, reason="try")
        await service.approve(record["replay_id"], APPROVER)
        done = await asyncio.wait_for(service.wait(record["replay_id"]), 60)
    assert done["state"] == "failed" and done["failed"] == 1
    [item] = done["items"]
    assert item["state"] == "failed"
    assert item["error"].startswith("downstream_unavailable")
    letter = await service.dead_letter(dead.event_id)
    assert letter["state"] == "open" and letter["attempts"] == dead.attempt + 1
    assert await count_sales(tryton, order.order_ref) == 0
    [entry], _ = await service.audit(action="replay.execute")
    assert entry["outcome"] == "failed" and entry["what"]["failed"] == 1
