"""A business hold a flow declares (``FlowSteps.hold_kinds``) is the transaction's
``on_hold`` state until a release kind follows; a held one is never stalled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _collector_events import make_event

from collector import FlowStep, FlowSteps
from collector.lineage import LineageStore

FLOW = FlowSteps(
    "demo",
    "opportunity.closed_won",
    (
        FlowStep("erp.order.create", timedelta(minutes=15)),
        FlowStep("erp.order.confirm", timedelta(minutes=15)),
    ),
    hold_kinds=frozenset({"order.on_hold"}),
    release_kinds=frozenset({"order.confirmed"}),
)


def _store() -> LineageStore:
    store = LineageStore(flows=(FLOW,))
    store.open()
    return store


def test_a_hold_is_on_hold_until_released_and_never_stalled() -> None:
    store = _store()
    store.write_batch(
        [
            make_event("h", n=1, kind="opportunity.closed_won", step="crm.opportunity.closed_won"),
            make_event("h", n=2, seconds=1, kind="order.created", step="erp.order.create"),
            make_event("h", n=3, seconds=2, kind="order.on_hold", step="erp.order.hold"),
        ]
    )
    later = datetime.now(UTC) + timedelta(days=2)
    items, total = store.list_transactions(state="on_hold", now=later)
    assert total == 1 and items[0]["state"] == "on_hold"
    # Still waiting for the confirmation, but a hold accounts for it: not stalled.
    assert items[0]["waiting_step"] == "erp.order.confirm"
    assert store.list_transactions(state="stalled", now=later)[1] == 0
    assert store.stats(now=later)["transactions_by_state"]["on_hold"] == 1
    # A later batch releases it.
    store.write_batch(
        [make_event("h", n=4, seconds=3, kind="order.confirmed", step="erp.order.confirm")]
    )
    assert store.list_transactions(state="on_hold")[1] == 0
    assert store.list_transactions()[0][0]["state"] == "in_progress"
    # And a second hold (the limit raised, still not enough) holds it again.
    store.write_batch(
        [make_event("h", n=5, seconds=4, kind="order.on_hold", step="erp.order.hold")]
    )
    assert store.list_transactions(state="on_hold")[1] == 1
    store.close()


def test_hold_and_release_in_one_batch_and_out_of_order() -> None:
    store = _store()
    store.write_batch(
        [
            make_event("a", n=1, seconds=0, kind="order.on_hold", step="erp.order.hold"),
            make_event("a", n=2, seconds=1, kind="order.confirmed", step="erp.order.confirm"),
        ]
    )
    assert store.list_transactions()[0][0]["state"] == "in_progress"
    # A hold arriving late (older than the release already stored) does not re-hold.
    store.write_batch(
        [make_event("b", n=3, seconds=5, kind="order.confirmed", step="erp.order.confirm")]
    )
    store.write_batch(
        [make_event("b", n=4, seconds=1, kind="order.on_hold", step="erp.order.hold")]
    )
    states = {t["correlation_id"]: t["state"] for t in store.list_transactions()[0]}
    assert states == {"a": "in_progress", "b": "in_progress"}
    store.close()


def test_a_flow_cannot_hold_and_release_on_one_kind() -> None:
    with pytest.raises(ValueError, match="same kind"):
        FlowSteps(
            "x",
            "t",
            (FlowStep("s", timedelta(minutes=1)),),
            hold_kinds=frozenset({"k"}),
            release_kinds=frozenset({"k"}),
        )
