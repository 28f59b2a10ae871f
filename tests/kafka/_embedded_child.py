"""A process with a journaled embedded bus and a collector-like subscriber.

``publish START`` publishes events START.. in bursts and prints the highest index
acknowledged after each burst; ``drain`` only replays the journal and exits.
Each stored batch is confirmed to the bus after its lineage commit.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_event

from collector import EmbeddedBus
from collector.lineage import AsyncLineage, LineageStore
from tracing import Event


async def main(mode: str, journal: Path, db: Path, start: int, total: int) -> None:
    lineage = AsyncLineage(LineageStore(db))
    await lineage.open()
    bus = EmbeddedBus(partitions=4, journal=journal)
    pending: list[Event] = []

    async def collect(event: Event) -> None:
        pending.append(event)
        if len(pending) >= 200:
            await flush()

    async def flush() -> None:
        batch = pending[:]
        pending.clear()
        if batch:
            await lineage.write_batch(batch)
            bus.confirm(e.event_id for e in batch)

    bus.subscribe("collector", collect)
    await bus.start()
    if mode == "publish":
        for first in range(start, total, 100):
            burst = [make_event(i) for i in range(first, min(first + 100, total))]
            await asyncio.gather(*(bus.publish(e) for e in burst))
            print(burst[-1].entity_id.removeprefix("SO-"), flush=True)
    await bus.drain()
    await flush()
    await bus.stop()
    await lineage.close()
    print("done", bus.replayed, flush=True)


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    )
