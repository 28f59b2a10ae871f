"""Durability against a real broker: SIGKILLed collectors, a restarted broker, failover."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import warnings
from collections import Counter

import pytest
from _procs import kill, start_collector, stored_ids
from aiokafka import AIOKafkaConsumer, TopicPartition
from conftest import kafka_settings, make_event, publish_all

from adapters.sandbox.kafka import TansuBroker
from collector.kafka import BusBackpressure, KafkaBus, KafkaCollector
from collector.lineage import AsyncLineage, LineageStore

GROUP = "interlock-collector"


async def _committed(bootstrap: str) -> int:
    # A group member that never subscribes only reads the group's offsets.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP)
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition("t.events", p)) for p in range(4)]
    finally:
        await consumer.stop()
    return sum(o or 0 for o in offsets)


async def _wait_committed(bootstrap: str, n: int, within: float) -> None:
    deadline = time.monotonic() + within
    while (done := await _committed(bootstrap)) < n:
        assert time.monotonic() < deadline, f"only {done} of {n} committed"
        await asyncio.sleep(0.3)


@pytest.mark.slow
async def test_sigkilled_collector_loses_nothing_and_counts_nothing_twice(settings, tmp_path):
    total, kills = 50_000, 10
    db = tmp_path / "lineage.duckdb"
    log = tmp_path / "collector.log"
    events = [make_event(i, correlations=10_000, payload_bytes=100) for i in range(total)]
    bus = KafkaBus(settings)
    await bus.start()

    async def produce() -> None:
        # A steady stream (~1,200 events/s) so all the kills land while it flows.
        for start in range(0, total, 500):
            await publish_all(bus, events[start : start + 500])
            await asyncio.sleep(0.4)

    producer = asyncio.create_task(produce())
    rng = random.Random(7)
    proc = start_collector(settings.bootstrap, db, log=log, session_ms=1000)
    try:
        progress = [0]
        for _ in range(kills):
            # Kill at a random moment once this process is ingesting (it has
            # committed something), so every kill lands mid-stream.
            await _wait_committed(settings.bootstrap, progress[-1] + 1, within=90)
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            await asyncio.to_thread(kill, proc, signal.SIGKILL)
            progress.append(await _committed(settings.bootstrap))
            proc = start_collector(settings.bootstrap, db, log=log, session_ms=1000)
        await producer
        await _wait_committed(settings.bootstrap, total, within=180)
    finally:
        await asyncio.to_thread(kill, proc, signal.SIGTERM)
        producer.cancel()
        await bus.stop()

    ids = stored_ids(db)
    assert progress == sorted(set(progress)), "each collector process made progress"
    assert progress[-1] < total, f"the last kill came before the end of the stream: {progress}"
    assert len(ids) == total, "every event exactly once"
    assert set(ids) == {e.event_id for e in events}


async def _servable(settings) -> set[str]:
    """Event IDs a fresh consumer can read from the events topic right now."""
    consumer = AIOKafkaConsumer(
        settings.events_topic, bootstrap_servers=settings.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    ids: set[str] = set()
    try:
        idle = 0
        while idle < 5:
            batch = await consumer.getmany(timeout_ms=200)
            got = [m for msgs in batch.values() for m in msgs]
            idle = 0 if got else idle + 1
            ids |= {dict(m.headers)["event-id"].decode() for m in got}
    finally:
        await consumer.stop()
    return ids


@pytest.mark.slow
async def test_broker_restart_mid_stream_pushes_back_then_resumes(broker: TansuBroker, tmp_path):
    settings = kafka_settings(broker, ack_timeout=1.0, max_buffered=500)
    bus = KafkaBus(settings)
    await bus.start()
    lineage = AsyncLineage(LineageStore())
    await lineage.open()
    collector = KafkaCollector(settings, lineage)
    await collector.start()

    acked: list[str] = []
    refused = 0
    stop_producing = asyncio.Event()
    running = asyncio.Event()
    running.set()

    async def one(i: int) -> None:
        nonlocal refused
        event = make_event(i)
        try:
            await bus.publish(event)
            acked.append(event.event_id)
        except BusBackpressure:
            refused += 1  # the source is told to retry later (a 503 upstream)

    async def produce() -> None:
        i = 0
        while not stop_producing.is_set():
            await running.wait()
            await asyncio.gather(*(one(i + k) for k in range(50)))
            i += 50
            await asyncio.sleep(0.01)

    async def stored() -> set[str]:
        return await lineage.read(
            lambda c: {r[0] for r in c.execute("SELECT event_id FROM events").fetchall()}
        )

    producer = asyncio.create_task(produce())
    await asyncio.sleep(1.5)
    # Tansu keeps messages in memory only, so a restart loses what it held: pause
    # until the collector holds what was acknowledged, so the checks below are
    # about our side (push-back, resume) and not about the broker's storage.
    running.clear()
    await asyncio.sleep(0.2)
    before = list(acked)
    deadline = time.monotonic() + 20
    while collector.stored < len(before):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    broker.stop()
    running.set()
    await asyncio.sleep(2.0)
    acked_in_outage, refused_in_outage = len(acked) - len(before), refused
    broker.start()
    await asyncio.sleep(3)
    stop_producing.set()
    await producer
    after = set(acked[len(before) :])

    servable = await _servable(settings)
    deadline = time.monotonic() + 25
    while not (servable <= (ids := await stored())) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.3)
    await collector.stop()
    await bus.stop()
    await lineage.close()

    assert acked_in_outage == 0 and refused_in_outage > 0, "no broker, no acknowledgement"
    assert after, "publishing resumed after the restart"
    assert set(before) <= ids, "what was stored before the outage stays"
    assert servable <= ids, "the collector resumed and stored all the broker serves"
    assert after & ids, "events published after the restart landed"
    unserved = after - servable
    if unserved:
        # Tansu (memory storage) sometimes acknowledges, after a restart, messages
        # its fetches then never return (end offsets cover them, fetches stop short).
        warnings.warn(
            f"broker acknowledged {len(unserved)} events after its restart that no "
            "consumer can fetch (Tansu memory storage)",
            stacklevel=1,
        )


@pytest.mark.slow
async def test_two_collectors_split_partitions_and_one_takes_over(settings, tmp_path):
    total = 6_000
    events = [make_event(i, correlations=1_000) for i in range(total)]
    bus = KafkaBus(settings)
    await bus.start()
    await publish_all(bus, events[:2_000])
    dbs = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
    procs = [start_collector(settings.bootstrap, db, log=tmp_path / "c.log") for db in dbs]
    try:
        await _wait_committed(settings.bootstrap, 2_000, within=90)
        await asyncio.to_thread(kill, procs[0], signal.SIGKILL)
        await publish_all(bus, events[2_000:])
        await _wait_committed(settings.bootstrap, total, within=120)
    finally:
        for proc in procs:
            await asyncio.to_thread(kill, proc, signal.SIGTERM)
        await bus.stop()
    # The survivor absorbed the dead collector's file before it fetched the
    # partitions it took over: one file, every event exactly once.
    assert not dbs[0].exists(), "the dead collector's file was absorbed"
    ids = stored_ids(dbs[1])
    assert len(ids) == total and set(ids) == {e.event_id for e in events}
    assert "absorbed lineage file" in (tmp_path / "c.log").read_text()


@pytest.mark.slow
async def test_two_collectors_with_one_killed_and_restarted_store_everything_once(
    settings, tmp_path
):
    total = 9_000
    events = [make_event(i, correlations=1_000) for i in range(total)]
    bus = KafkaBus(settings)
    await bus.start()
    dbs = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
    log = tmp_path / "c.log"
    procs = [start_collector(settings.bootstrap, db, log=log, session_ms=1000) for db in dbs]
    resent: set[str] = set()
    try:
        for round_ in range(3):
            chunk = events[round_ * 3_000 : (round_ + 1) * 3_000]
            resent |= await publish_all(bus, chunk[:1_500])
            await _wait_committed(settings.bootstrap, round_ * 3_000 + 1, within=90)
            # Killed mid-stream and started again on the same file at once.
            victim = round_ % 2
            await asyncio.to_thread(kill, procs[victim], signal.SIGKILL)
            procs[victim] = start_collector(
                settings.bootstrap, dbs[victim], log=log, session_ms=1000
            )
            resent |= await publish_all(bus, chunk[1_500:])
        await _wait_committed(settings.bootstrap, total, within=180)
    finally:
        for proc in procs:
            await asyncio.to_thread(kill, proc, signal.SIGTERM)
        await bus.stop()
    stored = [i for db in dbs for i in stored_ids(db)]
    assert set(stored) == {e.event_id for e in events}, "nothing lost"
    twice = {i for i, n in Counter(stored).items() if n > 1}
    # An event sent again after push-back is a second message; only those may land
    # in both files (the partition's next owner stores the repeat).
    assert twice <= resent, "no acknowledged event in two files"


def test_a_collector_that_cannot_reach_kafka_exits_with_a_clear_error(tmp_path):
    import subprocess
    import sys

    from _procs import ROOT

    from adapters.sandbox import free_port

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "collector._kafka_ingest",
            "--bootstrap",
            f"127.0.0.1:{free_port()}",
            "--db",
            str(tmp_path / "new" / "a.duckdb"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "collector: cannot create Kafka topics" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
async def test_collectors_joining_and_leaving_mid_stream_store_each_event_in_one_file(
    settings, tmp_path
):
    # Rebalances while batches are in flight: the batch a member is storing when its
    # partitions are revoked is committed before the next owner fetches them.
    total = 12_000
    events = [make_event(i, correlations=500) for i in range(total)]
    bus = KafkaBus(settings)
    await bus.start()
    stores = [AsyncLineage(LineageStore(tmp_path / f"{n}.duckdb")) for n in "ab"]
    for store in stores:
        await store.open()
    collectors = [
        KafkaCollector(settings, store, group=GROUP, max_batch=500, siblings=tmp_path)
        for store in stores
    ]

    async def produce() -> None:
        for start in range(0, total, 400):
            await publish_all(bus, events[start : start + 400])
            await asyncio.sleep(0.05)

    producer = asyncio.create_task(produce())
    try:
        await collectors[0].start()
        await _wait_committed(settings.bootstrap, 2_000, within=90)
        await collectors[1].start()  # joins: partitions move while A is storing
        await _wait_committed(settings.bootstrap, 6_000, within=90)
        await collectors[0].stop()  # leaves: B takes everything
        await producer
        await _wait_committed(settings.bootstrap, total, within=180)
    finally:
        producer.cancel()
        for collector in collectors:
            await collector.stop()
        await bus.stop()
    ids = []
    for store in stores:
        ids += await store.read(
            lambda c: [r[0] for r in c.execute("SELECT event_id FROM events").fetchall()]
        )
        await store.close()
    assert collectors[0].stored and collectors[1].stored, "both collectors stored batches"
    assert set(ids) == {e.event_id for e in events}, "nothing lost"
    assert len(ids) == total, "no event in two files"
