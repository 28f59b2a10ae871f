"""A bulk replay of 1,000 dead letters keeps to the configured rate."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from replay_support import APPROVER, OPERATOR, auto_outcomes, failed_order, seed

from replay import Selection
from tracing import Event, Status

RATE = 400.0  # publishes per second to one target


async def test_bulk_replay_of_1000_respects_the_rate(lineage, bus, make_service) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    pairs = [failed_order(at=base + timedelta(milliseconds=i)) for i in range(1000)]
    await seed(lineage, *pairs)
    stamps: list[float] = []

    # Stamp each re-delivery as it is published: a subscriber's clock would also
    # measure its own queueing jitter, which is not what the rate limits.
    publish = bus.publish

    async def clock_publishes(event: Event) -> None:
        if event.status is Status.REPLAYED:
            stamps.append(time.monotonic())
        await publish(event)

    bus.publish = clock_publishes
    auto_outcomes(bus)
    service = await make_service(rate_per_second=RATE, concurrency=16)
    record = await service.request(
        Selection(step="erp.order.create"), OPERATOR, reason="ERP recovered at 02:40"
    )
    assert record["total"] == 1000 and record["to_deliver"] == 1000
    started = time.monotonic()
    await service.approve(record["replay_id"], APPROVER)
    done = await asyncio.wait_for(service.wait(record["replay_id"]), 30)
    elapsed = time.monotonic() - started
    assert done["state"] == "completed" and done["succeeded"] == 1000
    assert len(stamps) == 1000
    # 1,000 at 400/s cannot take less than (1000 - burst) / 400 s.
    assert elapsed >= 999 / RATE
    # No one-second window holds more than the rate plus the one-token burst; the 1 %
    # allows for the few milliseconds of event-loop jitter between a token and its stamp.
    stamps.sort()
    j = 0
    worst = 0
    for i, stamp in enumerate(stamps):
        while stamps[j] < stamp - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    assert worst <= RATE * 1.01 + 1
    print(f"\n1000 replayed in {elapsed:.2f}s (rate {RATE:g}/s), busiest second {worst}")
    open_left = await lineage.read(
        lambda c: c.execute(
            "SELECT count(*) FROM dead_letters WHERE state <> 'resolved'"
        ).fetchone()[0]
    )
    assert open_left == 0
