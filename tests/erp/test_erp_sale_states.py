"""Tryton's sale-state changes, read by a write_date poll, become ``order.state_changed``
events under the order's correlation ID (what quote-to-cash publishes to the CRM)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from adapters._canonical import SalesOrder
from adapters.erp import TrytonAdapter
from adapters.flows._sale_states import SaleStatePoller
from collector import EmbeddedBus
from tracing import correlation_id_for


async def test_sale_changes_report_new_states_once_under_the_order(
    erp: TrytonAdapter, make_order: Callable[..., SalesOrder]
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    with pytest.raises(ValueError):
        await erp.sale_changes(since.replace(tzinfo=None))
    kept = make_order()
    dropped = make_order()
    sale, _ = await erp.create_sale(kept, idempotency_key=f"k-{uuid.uuid4().hex}")
    other, _ = await erp.create_sale(dropped, idempotency_key=f"k-{uuid.uuid4().hex}")
    confirmed = await erp.confirm_sale(sale.id)
    await erp._rpc.call("model.sale.sale.cancel", [other.id], transition=True)

    changes = await erp.sale_changes(since)
    states = {s.reference: s.state for s, _ in changes}
    assert states[kept.order_ref] == confirmed.state
    assert states[dropped.order_ref] == "cancelled"
    assert all(w.tzinfo is UTC and w >= since - timedelta(seconds=1) for _, w in changes)

    bus = EmbeddedBus(partitions=1)
    await bus.start()
    poller = SaleStatePoller(erp, bus, since=since)
    try:
        events = await poller.poll_once()
        again = await poller.poll_once()
    finally:
        await bus.stop()
    mine = {e.entity_id: e for e in events if e.entity_id in (kept.order_ref, dropped.order_ref)}
    assert mine[dropped.order_ref].payload["erp_state"] == "cancelled"
    assert mine[kept.order_ref].payload["erp_state"] == confirmed.state
    for ref, event in mine.items():
        assert event.kind == "order.state_changed" and event.step == "erp.order.state"
        assert event.correlation_id == correlation_id_for("crm", "opportunity", ref)
    # Read again (the overlap): no state is news twice.
    assert not [e for e in again if e.entity_id in mine]
