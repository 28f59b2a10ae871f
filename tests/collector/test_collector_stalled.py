"""Where a transaction waits, and when it is stalled (``collector._waiting``): overdue
at the step it waits for with no open dead letter to account for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from collector import FlowStep, FlowSteps, Role, TokenStore
from collector.api import Metrics, create_app
from collector.lineage import AsyncLineage, LineageStore
from tracing import ErrorInfo, Event, Reason, Status, System

FLOW = FlowSteps(
    "demo",
    "opportunity.closed_won",
    (
        FlowStep("erp.order.create", timedelta(minutes=15)),
        FlowStep("billing.subscription.create", timedelta(minutes=15)),
        FlowStep("billing.invoice.received", timedelta(days=35)),
        FlowStep(
            "support.entitlement.activate",
            timedelta(minutes=10),
            after="billing.subscription.create",
        ),
        FlowStep("erp.invoice.post", timedelta(minutes=15), after="billing.invoice.received"),
    ),
)
KINDS = {
    "erp.order.create": "order.created",
    "billing.subscription.create": "subscription.created",
    "billing.invoice.received": "invoice.paid",
    "support.entitlement.activate": "entitlement.activated",
    "erp.invoice.post": "invoice.posted",
}
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _chain(cid: str, at: datetime, *steps: str, status: Status = Status.OK) -> list[Event]:
    """A trigger at ``at`` and then ``steps`` one minute apart, the last with ``status``."""
    events = [
        Event(
            correlation_id=cid,
            idempotency_key=f"{cid}:trigger",
            source=System.CRM,
            kind="opportunity.closed_won",
            step="crm.opportunity.closed_won",
            entity_type="opportunity",
            entity_id=cid,
            event_time=at,
        )
    ]
    for i, step in enumerate(steps, 1):
        last = i == len(steps)
        events.append(
            Event(
                correlation_id=cid,
                causation_id=events[-1].event_id,
                idempotency_key=f"{cid}:{step}",
                source=System.INTERLOCK,
                kind=KINDS[step],
                step=step,
                entity_type="sales_order",
                entity_id=cid,
                status=status if last else Status.OK,
                event_time=at + timedelta(minutes=i),
                error=None
                if not last or status is Status.OK
                else ErrorInfo(reason=Reason.RATE_LIMIT, message="429", retriable=True),
            )
        )
    return events


@pytest.fixture
def store() -> LineageStore:
    s = LineageStore(flows=(FLOW,))
    s.open()
    s.write_batch(
        [
            # Waits for the subscription since 09:01; due 09:16.
            *_chain("stuck", T0, "erp.order.create"),
            # The same, but the subscription dead-lettered: accounted for.
            *_chain(
                "dead",
                T0,
                "erp.order.create",
                "billing.subscription.create",
                status=Status.DEAD_LETTERED,
            ),
            # Subscribed: entitlement due in 10 minutes, the paid invoice in 35 days.
            *_chain("branch", T0, "erp.order.create", "billing.subscription.create"),
            # Entitled too: now it only waits for the customer to pay.
            *_chain(
                "paying",
                T0,
                "erp.order.create",
                "billing.subscription.create",
                "support.entitlement.activate",
            ),
            *_chain(
                "done",
                T0,
                "erp.order.create",
                "billing.subscription.create",
                "billing.invoice.received",
                "erp.invoice.post",
            ),
        ]
    )
    return s


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["correlation_id"]: i for i in items}


def test_each_transaction_says_what_it_waits_for(store: LineageStore) -> None:
    items = _by_id(store.list_transactions(now=T0 + timedelta(minutes=5))[0])
    assert items["stuck"]["waiting_step"] == "billing.subscription.create"
    assert items["stuck"]["waiting_since"] == "2026-06-01T09:01:00Z"
    assert items["stuck"]["due_at"] == "2026-06-01T09:16:00Z"
    assert items["stuck"]["state"] == "in_progress"
    # Of two pending branches the earlier due is the one waited for.
    assert items["branch"]["waiting_step"] == "support.entitlement.activate"
    assert items["branch"]["due_at"] == "2026-06-01T09:12:00Z"
    assert items["paying"]["waiting_step"] == "billing.invoice.received"
    assert items["paying"]["due_at"] == "2026-07-06T09:02:00Z"
    assert items["dead"]["waiting_step"] == "billing.subscription.create"
    assert items["dead"]["state"] == "dead_lettered"
    assert items["done"]["state"] == "completed" and items["done"]["waiting_step"] is None


def test_overdue_without_a_dead_letter_is_stalled(store: LineageStore) -> None:
    later = T0 + timedelta(minutes=20)
    items, total = store.list_transactions(state="stalled", now=later)
    assert total == 2
    assert {i["correlation_id"]: i["waiting_step"] for i in items} == {
        "stuck": "billing.subscription.create",
        "branch": "support.entitlement.activate",
    }
    assert all(i["state"] == "stalled" for i in items)
    # Stalled ones are no longer counted as in progress; the dead-lettered one is not stalled.
    in_progress, n = store.list_transactions(state="in_progress", now=later)
    assert n == 1 and in_progress[0]["correlation_id"] == "paying"
    stats = store.stats(now=later)["transactions_by_state"]
    assert stats == {
        "in_progress": 1,
        "completed": 1,
        "on_hold": 0,
        "failed": 0,
        "dead_lettered": 1,
        "stalled": 2,
    }
    detail = store.get_transaction("stuck", now=later)
    assert detail is not None and detail["state"] == "stalled"
    # Before the deadline nothing is stalled.
    assert store.list_transactions(state="stalled", now=T0 + timedelta(minutes=5))[1] == 0


def test_without_step_tables_nothing_waits() -> None:
    plain = LineageStore()
    plain.open()
    plain.write_batch(_chain("x", T0, "erp.order.create"))
    [item], _ = plain.list_transactions(now=T0 + timedelta(days=1))
    assert item["state"] == "in_progress" and item["waiting_step"] is None
    assert plain.list_transactions(state="stalled")[1] == 0


def test_a_step_table_is_checked() -> None:
    with pytest.raises(ValueError, match="not an earlier step"):
        FlowSteps("f", "t", (FlowStep("a", timedelta(1), after="b"), FlowStep("b", timedelta(1))))
    with pytest.raises(ValueError, match="twice"):
        FlowSteps("f", "t", (FlowStep("a", timedelta(1)), FlowStep("a", timedelta(1))))
    with pytest.raises(ValueError, match="positive"):
        FlowStep("a", timedelta(0))


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    store = LineageStore(flows=(FLOW,))
    lineage = AsyncLineage(store)
    await lineage.open()
    # Real time: the stalled one started 30 minutes ago.
    start = datetime.now(UTC) - timedelta(minutes=30)
    await lineage.write_batch(
        [*_chain("stuck", start, "erp.order.create"), *_chain("fresh", datetime.now(UTC))]
    )
    tokens = TokenStore()
    tokens.add("view", Role.VIEWER, "view-token")
    app = create_app(lineage=lineage, metrics=Metrics(CollectorRegistry()), tokens=tokens)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"Authorization": "Bearer view-token"},
    ) as client:
        yield client
    await lineage.close()


async def test_the_api_lists_stalled_transactions(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/transactions", params={"state": "stalled"})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1
    [item] = body["items"]
    assert item["correlation_id"] == "stuck" and item["state"] == "stalled"
    assert item["waiting_step"] == "billing.subscription.create"
    assert item["waiting_since"] and item["due_at"]
    fresh = (await api.get("/api/v1/transactions/fresh")).json()
    assert fresh["state"] == "in_progress" and fresh["waiting_step"] == "erp.order.create"
    stats = (await api.get("/api/v1/stats")).json()
    assert stats["transactions_by_state"]["stalled"] == 1
