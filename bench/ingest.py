"""Ingest throughput: Kafka end to end and the embedded bus, beside raw baselines.

    python bench/ingest.py [--events N]

Baseline A: an aiokafka consumer that only fetches the messages. Baseline B:
DuckDB inserting the same rows from pre-built Arrow tables. Interlock Kafka: the
collector (decode, validate, dedupe, DuckDB commit, offset commit) on messages
already in the topic. Interlock embedded: publish through the embedded bus into
the same lineage pipeline. Not a test; it prints figures, the last line as
``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from _common import load_note, make_events, peak_rss_mb, summary_line
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adapters.sandbox.kafka import TansuBroker
from collector._bus import EmbeddedBus
from collector._kafka import ensure_topics
from collector._kafka_codec import encode_event
from collector._kafka_settings import KafkaSettings
from collector._lineage import CHECKPOINT_THRESHOLD, AsyncLineage, LineageStore
from collector._lineage_rows import EVENT_COLUMNS, batch_table
from collector._schema import DDL
from tracing import Event

BATCH = 5_000
#: Smaller batches bound the collector's memory (decoded envelopes in flight).
COLLECTOR_BATCH = 5_000
ROOT = Path(__file__).resolve().parents[1]


async def produce(settings: KafkaSettings, events: list[Event]) -> float:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    futures = []
    for e in events:
        key, value, headers = encode_event(e, {})
        futures.append(await producer.send(settings.events_topic, value, key=key, headers=headers))
    await asyncio.gather(*futures)
    await producer.stop()
    return len(events) / (time.perf_counter() - started)


async def raw_consume(settings: KafkaSettings, n: int) -> float:
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.bootstrap,
        group_id="bench-raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=32 << 20,
    )
    await consumer.start()
    got, started = 0, None
    while got < n:
        batch = await consumer.getmany(timeout_ms=500, max_records=BATCH)
        if batch and started is None:
            started = time.perf_counter()
        got += sum(len(msgs) for msgs in batch.values())
    elapsed = time.perf_counter() - (started or time.perf_counter())
    await consumer.stop()
    return n / elapsed


def raw_duckdb(events: list[Event], path: Path) -> float:
    tables = [
        batch_table(events[i : i + BATCH], datetime.now(UTC)).select(list(EVENT_COLUMNS))
        for i in range(0, len(events), BATCH)
    ]
    con = duckdb.connect(str(path))
    # The store's own checkpoint setting, so B is the floor of the same insert.
    con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    con.execute(DDL)
    started = time.perf_counter()
    for table in tables:
        con.register("_t", table)
        con.execute(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT * FROM _t")
        con.unregister("_t")
    elapsed = time.perf_counter() - started
    con.close()
    return len(events) / elapsed


async def committed(settings: KafkaSettings, group: str) -> int:
    # A member that never subscribes only reads the group's committed offsets.
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.events_topic, p) for p in range(settings.partitions)]
        return sum([(await consumer.committed(tp)) or 0 for tp in tps])
    finally:
        await consumer.stop()


def peak_rss_of(pid: int) -> float:
    """Peak resident memory (VmHWM) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def kafka_collector(settings: KafkaSettings, n: int, path: Path) -> tuple[float, float]:
    """The collector as its own process; (events/s, its peak RSS in MB)."""
    group = "bench-collector"
    proc = subprocess.Popen(  # noqa: ASYNC220  # started once, before timing
        [
            sys.executable,
            "-m",
            "collector._kafka_ingest",
            "--bootstrap",
            settings.bootstrap,
            "--db",
            str(path),
            "--group",
            group,
            "--partitions",
            str(settings.partitions),
            "--max-batch",
            str(COLLECTOR_BATCH),
            "--memory-limit",
            "256MB",
        ],
        cwd=ROOT,
    )
    try:
        first, started = 0, 0.0
        while (done := await committed(settings, group)) < n:
            if not first and done:
                first, started = done, time.perf_counter()
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        rss = peak_rss_of(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return (n - first) / elapsed, rss


async def embedded(events: list[Event], path: Path) -> float:
    lineage = AsyncLineage(LineageStore(path))
    await lineage.open()
    bus = EmbeddedBus(partitions=4, queue_size=BATCH * 4)
    pending: list[Event] = []
    writes: list[asyncio.Future[object]] = []

    async def collect(event: Event) -> None:
        pending.append(event)
        if len(pending) >= BATCH:
            batch = pending[:]
            pending.clear()
            writes.append(asyncio.ensure_future(lineage.write_batch(batch)))

    bus.subscribe("collector", collect)
    await bus.start()
    started = time.perf_counter()
    for e in events:
        await bus.publish(e)
    await bus.drain()
    if pending:
        writes.append(asyncio.ensure_future(lineage.write_batch(pending[:])))
    await asyncio.gather(*writes)
    elapsed = time.perf_counter() - started
    await bus.stop()
    await lineage.close()
    return len(events) / elapsed


async def main(n: int) -> None:
    gc.set_threshold(50_000, 20, 20)
    print(f"# {n} events, 1 KB payloads, 10,000 correlation IDs; {load_note()}")
    t = time.perf_counter()
    events = make_events(n)
    print(f"built envelopes in {time.perf_counter() - t:.1f}s ({len(events[0].to_json())} B each)")
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        settings = KafkaSettings(bootstrap=broker.bootstrap, partitions=12, max_batch=BATCH)
        produce_eps = await produce(settings, events)
        print(f"produce (raw aiokafka, acks=all): {produce_eps:,.0f} events/s")
        raw_a = await raw_consume(settings, n)
        print(f"baseline A, fetch only:           {raw_a:,.0f} events/s")
        raw_b = raw_duckdb(events, Path(tmp) / "raw.duckdb")
        print(f"baseline B, DuckDB from Arrow:    {raw_b:,.0f} events/s")
        kafka, collector_rss = await kafka_collector(settings, n, Path(tmp) / "kafka.duckdb")
        print(f"Interlock on Kafka, end to end:   {kafka:,.0f} events/s")
        print(f"collector process peak RSS:       {collector_rss:,.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        emb = await embedded(events, Path(tmp) / "embedded.duckdb")
        print(f"Interlock embedded, end to end:   {emb:,.0f} events/s")
    rss = peak_rss_mb()
    print(f"peak RSS of the bench process: {rss:.0f} MB (holds all {n} envelopes)")
    print(
        summary_line(
            events=n,
            kafka_eps=round(kafka),
            embedded_eps=round(emb),
            raw_consume_eps=round(raw_a),
            raw_duckdb_eps=round(raw_b),
            ratio_raw_consume=kafka / raw_a,
            peak_rss_mb=round(collector_rss),
            bench_rss_mb=round(rss),
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().events))
