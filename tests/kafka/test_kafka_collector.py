"""The collector as a Kafka consumer group: dead letters, metrics, offsets after the commit."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from conftest import make_event

from collector.kafka import KafkaBus, KafkaCollector
from collector.lineage import AsyncLineage, LineageStore
from tracing import StoreError


async def _wait(predicate, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_poison_messages_become_dead_letters_and_every_good_message_lands(settings):
    bus = KafkaBus(settings)
    await bus.start()
    good = [make_event(i) for i in range(500)]
    await bus.publish_many(good[:250])
    p = bus.producer
    topic = settings.events_topic
    future_schema = make_event(10_000).model_copy(update={"schema_version": 99})
    poison = [
        (b"not json at all", [("correlation-id", b"corr-1")]),
        (b'{"event_id": "x"}', []),
        (future_schema.to_json(), [("schema-version", b"99")]),
        (make_event(10_001).to_json(), [("correlation-id", b"someone-else")]),
        (b"", []),
    ]
    for value, headers in poison:
        await p.send_and_wait(topic, value, key=b"corr-1", headers=headers)
    await bus.publish_many(good[250:])
    await bus.stop()

    lineage = AsyncLineage(LineageStore())
    await lineage.open()
    collector = KafkaCollector(settings, lineage)
    await collector.start()
    await _wait(lambda: collector.processed >= 505)
    await collector.stop()

    rows = await lineage.read(
        lambda c: c.execute(
            "SELECT status, count(*) FROM events GROUP BY status ORDER BY status"
        ).fetchall()
    )
    assert rows == [("dead_lettered", 5), ("ok", 500)]
    stored = await lineage.read(
        lambda c: {
            r[0] for r in c.execute("SELECT event_id FROM events WHERE status='ok'").fetchall()
        }
    )
    assert stored == {e.event_id for e in good}
    letters = await lineage.read(
        lambda c: c.execute("SELECT reason, error_message FROM dead_letters").fetchall()
    )
    assert len(letters) == 5
    assert {r[0] for r in letters} == {"validation"}
    messages = " | ".join(r[1] for r in letters)
    assert "Invalid JSON" in messages and "empty message body" in messages
    assert "newer than this collector" in messages and "does not match" in messages
    await lineage.close()

    dead = AIOKafkaConsumer(
        settings.dead_letter_topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
    )
    await dead.start()
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 5 and time.monotonic() < deadline:
        got += [m for ms in (await dead.getmany(timeout_ms=200)).values() for m in ms]
    await dead.stop()
    assert len(got) == 5
    for msg in got:
        headers = dict(msg.headers)
        assert headers["dead-letter-reason"] == b"validation"
        assert headers["dead-letter-message"]
        assert headers["original-topic"] == topic.encode()
        assert int(headers["original-offset"]) >= 0

    reg = collector.metrics.registry
    group = {"group": "interlock-collector"}
    assert reg.get_sample_value("interlock_kafka_consumed_total", group) == 505
    assert (
        reg.get_sample_value(
            "interlock_kafka_dead_letters_total", {**group, "reason": "validation"}
        )
        == 5
    )
    assert reg.get_sample_value("interlock_kafka_batch_size_count", group) >= 1
    assert (
        reg.get_sample_value("interlock_kafka_commit_seconds_count", {**group, "stage": "store"})
        >= 1
    )
    lags = [
        reg.get_sample_value(
            "interlock_kafka_consumer_lag", {**group, "topic": topic, "partition": str(p)}
        )
        for p in range(settings.partitions)
    ]
    assert all(lag == 0 for lag in lags if lag is not None)
    assert reg.get_sample_value("interlock_kafka_oldest_unprocessed_age_seconds", group) == 0


async def test_offsets_are_committed_only_after_the_lineage_commit(settings):
    """A store that fails leaves the offsets where they were; a new collector redoes it."""
    bus = KafkaBus(settings)
    await bus.start()
    events = [make_event(i) for i in range(100)]
    await bus.publish_many(events)
    await bus.stop()

    class FailingLineage(AsyncLineage):
        calls = 0

        async def write_batch(self, batch):
            FailingLineage.calls += 1
            raise StoreError("disk full")

        async def write_columns(self, columns):
            FailingLineage.calls += 1
            raise StoreError("disk full")

    failing = KafkaCollector(settings, FailingLineage(LineageStore()))
    await failing.start()
    await _wait(lambda: FailingLineage.calls >= 2)  # retried from the same offsets
    await failing.stop()
    assert failing.processed == 0

    lineage = AsyncLineage(LineageStore())
    await lineage.open()
    collector = KafkaCollector(settings, lineage)
    await collector.start()
    await _wait(lambda: collector.stored >= 100)
    await collector.stop()
    count = await lineage.read(lambda c: c.execute("SELECT count(*) FROM events").fetchone())
    assert count == (100,)
    await lineage.close()
