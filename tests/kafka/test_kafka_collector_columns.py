"""The in-process collector on Kafka takes the column path, with exact metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from conftest import make_event

from collector.api import Metrics
from collector.kafka import KafkaBus, KafkaSettings
from collector.lineage import AsyncLineage, Collector, EnvelopeColumns, LineageStore
from tracing import ErrorInfo, Event, Reason, Status, System


class _CountingCollector(Collector):
    """Counts the batches that came through the column path."""

    column_batches = 0

    async def write_columns_now(self, columns: EnvelopeColumns) -> None:
        self.column_batches += 1
        await super().write_columns_now(columns)

    async def write_now(self, events: object) -> None:  # type: ignore[override]
        raise AssertionError("the Kafka bus should hand the collector columns")


async def _wait(predicate: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _billing_failure(i: int, *, dead: bool) -> Event:
    return make_event(5_000 + i).model_copy(
        update={
            "source": System.BILLING,
            "kind": "invoice.failed",
            "step": "billing.create_invoice",
            "status": Status.DEAD_LETTERED if dead else Status.FAILED,
            "duration_ms": 250.0,
            "error": ErrorInfo(reason=Reason.DOWNSTREAM_UNAVAILABLE, message="502", retriable=False)
            if dead
            else None,
        }
    )


async def _committed(settings: KafkaSettings, group: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.events_topic, p) for p in range(settings.partitions)]
        return sum([(await consumer.committed(tp)) or 0 for tp in tps])
    finally:
        await consumer.stop()


async def test_collector_on_kafka_writes_columns_with_exact_metrics(
    settings: KafkaSettings,
) -> None:
    orders = [make_event(i) for i in range(300)]
    failures = [_billing_failure(i, dead=i < 3) for i in range(20)]
    publisher = KafkaBus(settings)
    await publisher.start()
    await publisher.publish_many(orders + failures)
    await publisher.publish_many(orders[:50])  # redelivered: dropped by event ID
    await publisher.producer.send_and_wait(
        settings.events_topic, b"not json", key=b"corr-1", headers=[]
    )
    await publisher.stop()
    delivered = 300 + 20 + 50 + 1

    lineage = AsyncLineage(LineageStore(memory_limit="128MB", threads=1))
    await lineage.open()
    metrics = Metrics()
    bus = KafkaBus(settings)
    await bus.start()
    collector = _CountingCollector(lineage, metrics)
    collector.attach(bus)
    await collector.start()
    try:
        await _wait(
            lambda: _sample(metrics, "interlock_ingest_batch_size_sum") >= delivered, within=30
        )
        # Offsets trail the lineage: once everything is stored, they reach the end.
        deadline = time.monotonic() + 10
        while await _committed(settings, "collector") < delivered:
            assert time.monotonic() < deadline, "offsets were not committed"
            await asyncio.sleep(0.1)
    finally:
        await collector.stop()
        await bus.stop()

    stats = await lineage.stats()
    await lineage.close()
    assert bus.handled == 0  # no per-event handler ran
    assert _sample(metrics, "interlock_ingest_batch_size_sum") == delivered
    batches = _sample(metrics, "interlock_ingest_batch_size_count")
    assert batches == collector.column_batches >= 1
    assert _sample(metrics, "interlock_lineage_commit_seconds_count") == batches
    ev = "interlock_events_total"
    assert _sample(metrics, ev, system="crm", kind="order.created", status="ok") == 300
    assert _sample(metrics, ev, system="billing", kind="invoice.failed", status="failed") == 17
    assert (
        _sample(metrics, ev, system="billing", kind="invoice.failed", status="dead_lettered") == 3
    )
    assert (
        _sample(metrics, ev, system="interlock", kind="message.rejected", status="dead_lettered")
        == 1
    )
    assert _sample(metrics, "interlock_duplicates_dropped_total") == 50
    step = {"step": "billing.create_invoice"}
    assert _sample(metrics, "interlock_step_duration_seconds_count", **step) == 20
    assert _sample(metrics, "interlock_step_duration_seconds_sum", **step) == 20 * 0.25
    assert _sample(metrics, "interlock_dead_letters_open") == stats["dead_letters_open"] == 4
    assert _sample(metrics, "interlock_invalid_events_total", reason="json") == 0
