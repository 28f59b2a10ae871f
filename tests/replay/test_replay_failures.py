"""A replay whose redo fails again, at the step it redid or at a later one, leaves
an open, grouped, replayable dead letter: nothing a replay touches disappears."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from collector import Role, TokenStore
from collector.api import Metrics, create_app
from replay import Selection, replay_router
from tests.flows._harness import World, world

VIEWER_TOKEN = "viewer-token-replay-failures"


async def _outage_then_storm(w: World, deals: int) -> list[str]:
    """``deals`` orders dead-lettered by an ERP outage, then a group replay of them
    run into a billing 429 storm: the ERP step succeeds, the subscription fails."""
    w.erp.down = True
    cids = [await w.close_deal(f"006R{i:03d}") for i in range(deals)]
    await w.settle()
    w.erp.down = False
    w.billing.rate_limited = True
    done = await w.replay_group("downstream_unavailable:erp.order.create")
    assert done is not None and done["succeeded"] == deals
    w.billing.rate_limited = False
    return cids


async def test_a_failure_after_a_replay_at_another_step_is_an_open_dead_letter() -> None:
    async with world() as w:
        cids = await _outage_then_storm(w, 8)
        items, total = await w.lineage.list_dead_letters(state="open")
        assert total == 8
        assert {i["step"] for i in items} == {"billing.subscription.create"}
        assert {i["correlation_id"] for i in items} == set(cids)
        assert {i["reason"] for i in items} == {"rate_limit"}
        for cid in cids:
            summary = await w.lineage.get_transaction(cid)
            assert summary is not None
            assert summary["state"] == "dead_lettered" and summary["dead_letter_count"] == 2
        # The ERP outage's dead letters are the ones the replay resolved.
        resolved, _ = await w.lineage.list_dead_letters(state="resolved")
        assert {i["step"] for i in resolved} == {"erp.order.create"}
        groups = await w.replay.groups(Selection(states=("open",)))
        assert [(g["group_id"], g["count"]) for g in groups] == [
            ("rate_limit:billing.subscription.create", 8)
        ]


async def test_the_new_dead_letters_replay_and_the_transactions_complete() -> None:
    async with world() as w:
        cids = await _outage_then_storm(w, 4)
        done = await w.replay_group("rate_limit:billing.subscription.create")
        assert done is not None and done["succeeded"] == 4 and done["state"] == "completed"
        assert len(w.billing.subscriptions) == 4 and len(w.erp.sales) == 4
        for ref in list(w.billing.subscriptions):
            assert await w.pay_invoice(ref)
        await w.settle()
        _, still_open = await w.lineage.list_dead_letters(state="open")
        assert still_open == 0
        for cid in cids:
            summary = await w.lineage.get_transaction(cid)
            assert summary is not None and summary["state"] == "completed"


async def test_a_redo_failing_at_the_same_step_reopens_the_original_only() -> None:
    async with world() as w:
        w.erp.down = True
        cid = await w.close_deal("006S001")
        await w.settle()
        done = await w.replay_group("downstream_unavailable:erp.order.create")
        assert done is not None and done["failed"] == 1
        items, total = await w.lineage.list_dead_letters(state="open")
        assert total == 1 and items[0]["correlation_id"] == cid
        assert items[0]["step"] == "erp.order.create" and items[0]["attempts"] == 4


async def test_the_api_lists_them_open(tmp_path) -> None:
    async with world() as w:
        await _outage_then_storm(w, 3)
        tokens = TokenStore()
        tokens.add("vic", Role.VIEWER, VIEWER_TOKEN)
        app = create_app(
            lineage=w.lineage,
            metrics=Metrics(CollectorRegistry()),
            tokens=tokens,
            routers=[replay_router(w.replay)],
        )
        headers = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        with TestClient(app) as client:
            listed = client.get("/api/v1/dead-letters", headers=headers).json()
            assert listed["total"] == 3
            assert {i["step"] for i in listed["items"]} == {"billing.subscription.create"}
            stats = client.get("/api/v1/stats", headers=headers).json()
            assert stats["dead_letters_open"] == 3
            assert stats["transactions_by_state"]["dead_lettered"] == 3
