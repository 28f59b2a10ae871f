"""Soak: quote-to-cash under random fault schedules, then the accounting invariant.

Each seed draws a schedule of deals closing, ERP outages starting and ending, billing
429 storms, group replays (often while a storm or an outage is on), repeat deliveries
from the CRM feed, the bus and billing's webhooks, and paid invoices. Afterwards:

1. every transaction is completed, in flight within its step's deadline, or has an
   unresolved dead letter: and past every deadline, none is stalled (nothing waits
   where no one can see it);
2. with the faults over, replaying what is open completes every transaction, each
   with exactly one ERP sale, subscription and posted invoice.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from replay import Selection

from ._harness import World, world

SEEDS = (1, 7, 42, 2026, 90210)
ACTIONS = 70
#: Past every deadline of the quote-to-cash step table (the longest is 35 days).
BEYOND = timedelta(days=36)


async def _step(w: World, rng: random.Random, deals: list[str]) -> None:
    action = rng.choices(
        ["close", "erp", "storm", "replay", "crm_again", "bus_again", "pay", "settle"],
        weights=[6, 2, 2, 3, 1, 1, 2, 2],
    )[0]
    if action == "close" or not deals:
        ref = f"006K{len(deals):04d}"
        deals.append(ref)
        await w.close_deal(ref)
    elif action == "erp":
        w.erp.down = not w.erp.down
    elif action == "storm":
        w.billing.rate_limited = not w.billing.rate_limited
    elif action == "replay":
        groups = [g["group_id"] for g in await _open_groups(w)]
        if groups:
            await w.replay_group(rng.choice(groups))
    elif action == "crm_again":
        await w.deliver_again(rng.choice(deals))
    elif action == "bus_again":
        # At-least-once: the bus hands the same event (same ID) to the flow again.
        await w.bus.publish(rng.choice(w.triggers))
    elif action == "pay":
        await w.pay_invoice(rng.choice(deals), redeliver=rng.random() < 0.3)
    else:
        await w.settle()


async def _open_groups(w: World) -> list[dict[str, Any]]:
    await w.settle()
    return await w.replay.groups(Selection(states=("open",)))


async def _unaccounted(w: World, now: datetime) -> list[dict[str, Any]]:
    """Transactions neither completed, nor on an unresolved dead letter, nor waiting
    within a deadline at ``now``."""
    items, _ = await w.lineage.list_transactions(limit=1000, now=now)
    out = []
    for item in items:
        if item["state"] in ("completed", "dead_lettered"):
            continue
        due = item["due_at"]
        if due is not None and datetime.fromisoformat(due) > now:
            continue
        out.append(item)
    return out


@pytest.mark.parametrize("seed", SEEDS)
async def test_no_transaction_is_left_unaccounted(seed: int) -> None:
    rng = random.Random(seed)
    async with world() as w:
        deals: list[str] = []
        for _ in range(ACTIONS):
            await _step(w, rng, deals)
        await w.settle()
        # Billing invoices what it holds, a storm may still be on.
        for ref in deals:
            await w.pay_invoice(ref, redeliver=rng.random() < 0.3)
        await w.settle()

        now = datetime.now(UTC)
        assert await _unaccounted(w, now) == []
        # Nothing is in flight any more: past every deadline, each one is complete or
        # visibly waiting on a dead letter, and none is stalled.
        later = now + BEYOND
        assert await _unaccounted(w, later) == []
        stalled, n = await w.lineage.list_transactions(state="stalled", now=later)
        assert n == 0, stalled
        stats = await w.lineage.stats(now=later)
        assert stats["transactions_by_state"]["stalled"] == 0
        assert stats["transactions_total"] == len(deals)

        # The faults end; what is open replays, billing invoices the rest.
        w.erp.down = w.billing.rate_limited = False
        for _ in range(4):
            groups = await _open_groups(w)
            if not groups:
                break
            for group in groups:
                await w.replay_group(group["group_id"])
            for ref in deals:
                await w.pay_invoice(ref)
            await w.settle()
        assert await _open_groups(w) == []
        items, _ = await w.lineage.list_transactions(limit=1000)
        assert {i["state"] for i in items} == {"completed"}, [
            (i["correlation_id"], i["state"], i["waiting_step"]) for i in items
        ]
        assert sorted(w.erp.sales) == sorted(deals)
        assert sorted(w.billing.subscriptions) == sorted(deals)
        assert len(w.erp.invoices) == len(deals)
