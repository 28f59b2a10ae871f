"""Ingest throughput: Kafka end to end and the embedded bus, beside raw baselines.

    python bench/ingest.py [--events N]
    python bench/ingest.py --collector-only --events 5000000 [--memory-limit 256MB] [--threads 1]

Baseline A: an aiokafka consumer that only fetches the messages. Baseline B:
DuckDB inserting the same rows from pre-built Arrow tables. Interlock Kafka: the
collector (decode, validate, dedupe, DuckDB commit, offset commit) on messages
already in the topic. Interlock embedded: publish through the embedded bus into
the same lineage pipeline. Not a test; it prints figures, the last line as
``name=value`` pairs.

``--collector-only`` measures the collector process alone at large N: the
messages are formatted from one encoded envelope (nothing is held in the bench
process) and produced while the collector consumes; its resident memory is
sampled as the store grows and its peak (VmHWM) reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from _common import load_note, make_events, peak_rss_mb, summary_line
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adapters.sandbox.kafka import TansuBroker
from collector import EmbeddedBus
from collector.kafka import KafkaCollector, KafkaSettings, encode_event, ensure_topics
from collector.lineage import (
    CHECKPOINT_THRESHOLD,
    DDL,
    EVENT_COLUMNS,
    AsyncLineage,
    LineageStore,
    batch_table,
)
from tracing import ConfigError, Event

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


def peak_rss_of(pid: int, field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _templated(correlations: int = 10_000) -> tuple[bytes, bytes]:
    """(body template, correlation-ID template): one encoded envelope with %-slots."""
    e = make_events(1)[0]
    _key, value, _headers = encode_event(e, {})
    value = value.replace(b"%", b"%%")
    for field, old in (
        ("event_id", e.event_id),
        ("correlation_id", e.correlation_id),
        ("idempotency_key", e.idempotency_key),
        ("entity_id", e.entity_id),
        ("customer_id", e.customer_id or ""),
    ):
        needle = f'"{field}":"{old}"'.encode()
        assert value.count(needle) == 1, field
        value = value.replace(needle, f'"{field}":"%({field})s"'.encode())
    return value, f"txn-%0{len(str(correlations))}d".encode()


async def produce_stream(settings: KafkaSettings, n: int, chunk: int = 20_000) -> float:
    """Produce ``n`` distinct envelopes formatted from one template; events/s."""
    await ensure_topics(settings)
    body, corr = _templated()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for base in range(0, n, chunk):
            futures = []
            for i in range(base, min(n, base + chunk)):
                eid = str(uuid.UUID(int=i + 1)).encode()
                cid = corr % (i % 10_000)
                value = body % {
                    b"event_id": eid,
                    b"correlation_id": cid,
                    b"idempotency_key": b"idem-%d" % i,
                    b"entity_id": b"SO-%d" % i,
                    b"customer_id": b"cust-%d" % (i % 5000),
                }
                headers = [
                    ("correlation-id", cid),
                    ("event-id", eid),
                    ("event-kind", b"order.created"),
                    ("schema-version", b"1"),
                ]
                fut = await producer.send(settings.events_topic, value, key=cid, headers=headers)
                futures.append(fut)
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n / (time.perf_counter() - started)


def _files_mb(folder: Path, pattern: str) -> float:
    """Size of the files matching ``pattern`` (the DuckDB file and its WAL), in MB."""
    return sum(p.stat().st_size for p in folder.glob(pattern)) / 1e6


def _collector_cmd(
    settings: KafkaSettings,
    path: Path,
    group: str,
    memory_limit: str,
    threads: int | None,
    checkpoint_mb: int,
) -> list[str]:
    if threads is None:
        # The shipped entry point (it has no threads option).
        cmd = [sys.executable, "-m", "collector._kafka_ingest"]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-collector"]
        cmd += ["--threads", str(threads), "--checkpoint-threshold", str(checkpoint_mb)]
    cmd += ["--bootstrap", settings.bootstrap, "--db", str(path), "--group", group]
    batch = os.environ.get("BENCH_MAX_BATCH", str(COLLECTOR_BATCH))
    cmd += ["--partitions", str(settings.partitions), "--max-batch", batch]
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    return cmd


async def collector_only(
    n: int, memory_limit: str, threads: int | None, checkpoint_mb: int = 0
) -> dict[str, float | int | str]:
    """The collector process alone, fed while it runs: rate and memory as the store grows."""
    group = "bench-collector"
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        settings = KafkaSettings(bootstrap=broker.bootstrap, partitions=12, max_batch=BATCH)
        await ensure_topics(settings)
        path = Path(tmp) / "lineage.duckdb"
        proc = subprocess.Popen(  # noqa: ASYNC220  # started once, before timing
            _collector_cmd(settings, path, group, memory_limit, threads, checkpoint_mb), cwd=ROOT
        )
        producing = asyncio.ensure_future(produce_stream(settings, n))
        marks = [n * k // 5 for k in range(1, 6)]
        loads: list[float] = []
        try:
            first, started = 0, 0.0
            while (done := await committed(settings, group)) < n:
                if producing.done() and producing.exception() is not None:
                    raise RuntimeError("producer failed") from producing.exception()
                if proc.poll() is not None:
                    raise RuntimeError(f"collector exited with {proc.returncode}")
                if not first and done:
                    first, started = done, time.perf_counter()
                while marks and done >= marks[0]:
                    rss = peak_rss_of(proc.pid, "VmRSS")
                    loads.append(os.getloadavg()[0])
                    print(
                        f"  {marks.pop(0):>9,} stored: collector RSS {rss:,.0f} MB, "
                        f"peak {peak_rss_of(proc.pid):,.0f} MB, load {loads[-1]:.2f}",
                        flush=True,
                    )
                await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
            peak = peak_rss_of(proc.pid)
            rss_end = peak_rss_of(proc.pid, "VmRSS")
            loads.append(os.getloadavg()[0])
            print(f"  {n:>9,} stored: collector RSS {rss_end:,.0f} MB, peak {peak:,.0f} MB")
            # The broker holds every message in memory (Tansu memory storage).
            broker_pid = getattr(getattr(broker, "_process", None), "pid", None)
            broker_peak = peak_rss_of(broker_pid) if broker_pid else float("nan")
            produce_eps = await producing
        finally:
            producing.cancel()
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        size_mb = _files_mb(Path(tmp), "lineage.duckdb*")
    return {
        "events": n,
        "collector_eps": round((n - first) / max(elapsed, 1e-9)),
        "produce_eps": round(produce_eps),
        "peak_rss_mb": round(peak),
        "broker_rss_mb": round(broker_peak),
        "db_mb": round(size_mb),
        "memory_limit": memory_limit or "default",
        "threads": threads if threads is not None else "default",
        "checkpoint_mb": checkpoint_mb or CHECKPOINT_THRESHOLD,
        "load_max": round(max(loads, default=float("nan")), 2),
    }


def _execute(sql: str, con: duckdb.DuckDBPyConnection) -> None:
    con.execute(sql)


def _probe_memory(collector: KafkaCollector, lineage: AsyncLineage) -> None:
    """Bench knobs and a memory breakdown every ``BENCH_PROBE_EVERY`` batches (stderr).

    ``BENCH_TRIM_EVERY=N`` returns freed glibc memory (``malloc_trim(0)``) every N
    batches; ``BENCH_ARROW_RELEASE=1`` returns Arrow's pool's unused memory too.
    ``BENCH_RELEASE_EVERY=N`` is the collector's own ``release_every`` instead.
    """
    import ctypes

    import pyarrow as pa

    libc = ctypes.CDLL("libc.so.6")
    trim_every = int(os.environ.get("BENCH_TRIM_EVERY", "0"))
    arrow_release = os.environ.get("BENCH_ARROW_RELEASE") == "1"
    probe_every = int(os.environ.get("BENCH_PROBE_EVERY", "40"))
    write = collector._write_columns
    trim_s = [0.0]

    class _Mallinfo2(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    libc.mallinfo2.restype = _Mallinfo2

    trace = os.environ.get("BENCH_HWM_TRACE") == "1"
    wal = Path(str(lineage.store.path) + ".wal")
    last_hwm = [peak_rss_of(os.getpid())]

    def wal_mb() -> float:
        return wal.stat().st_size / 1e6 if wal.exists() else 0.0

    async def wrapped(columns: Any) -> None:
        # With BENCH_HWM_TRACE=1: which batches raise the peak, and whether DuckDB
        # checkpointed during them (its WAL shrank), to find the transient peaks.
        before, wal_before = peak_rss_of(os.getpid()), wal_mb()
        t0 = time.perf_counter()
        await write(columns)
        n = collector.batches
        if trace:
            hwm = peak_rss_of(os.getpid())
            if hwm > last_hwm[0] + 2:
                wal_after = wal_mb()
                print(
                    f"  hwm {collector.stored:>9,}: {before:.0f}->{hwm:.0f} MB "
                    f"(before this write {last_hwm[0]:.0f}) write {time.perf_counter() - t0:.2f}s "
                    f"wal {wal_before:.0f}->{wal_after:.0f} MB"
                    f"{' CHECKPOINT' if wal_after < wal_before else ''}",
                    file=sys.stderr,
                    flush=True,
                )
            last_hwm[0] = hwm
        if trim_every and n % trim_every == 0:
            t = time.perf_counter()
            if arrow_release:
                pa.default_memory_pool().release_unused()
            libc.malloc_trim(0)
            trim_s[0] += time.perf_counter() - t
        if probe_every and n % probe_every == 0:
            mi = libc.mallinfo2()
            rows = await lineage.read(
                lambda c: c.execute(
                    "SELECT tag, memory_usage_bytes FROM duckdb_memory() "
                    "WHERE memory_usage_bytes > 1e6 ORDER BY 2 DESC"
                ).fetchall()
            )
            held = " ".join(f"{tag}={size / 1e6:.0f}" for tag, size in rows)
            print(
                f"  probe {collector.stored:>9,}: rss={peak_rss_of(os.getpid(), 'VmRSS'):.0f} "
                f"hwm={peak_rss_of(os.getpid()):.0f} glibc_used={mi.uordblks / 1e6:.0f} "
                f"glibc_free={mi.fordblks / 1e6:.0f} glibc_mmap={mi.hblkhd / 1e6:.0f} "
                f"arrow={pa.total_allocated_bytes() / 1e6:.0f} "
                f"arrow_max={pa.default_memory_pool().max_memory() / 1e6:.0f} "
                f"duckdb[{held}] trim_s={trim_s[0]:.2f}",
                file=sys.stderr,
                flush=True,
            )

    collector._write_columns = wrapped  # type: ignore[method-assign]


async def serve_collector(args: argparse.Namespace) -> None:
    """``collector._kafka_ingest`` with the store's ``threads`` option (bench only)."""
    if args.memory_limit and not args.memory_limit[0].isdigit():
        raise ConfigError("--memory-limit", f"not a size: {args.memory_limit!r}")
    settings = KafkaSettings(
        bootstrap=args.bootstrap,
        partitions=args.partitions,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_500,
        fetch_max_bytes=int(os.environ.get("BENCH_FETCH_MAX_BYTES", 8 * 1024 * 1024)),
    )
    store = LineageStore(
        Path(args.db), memory_limit=args.memory_limit or None, threads=args.threads
    )
    lineage = AsyncLineage(store)
    await lineage.open()
    if args.checkpoint_threshold:
        # Data not yet checkpointed stays in memory (IN_MEMORY_TABLE): a lever on memory.
        statement = f"SET checkpoint_threshold = '{int(args.checkpoint_threshold)}MB'"
        await lineage.write(lambda c: c.execute(statement))
    for setting in filter(None, os.environ.get("BENCH_DUCKDB_SET", "").split(";")):
        # Extra DuckDB settings to compare (memory levers), e.g. allocator_flush_threshold.
        await lineage.write(partial(_execute, f"SET {setting}"))
    collector = KafkaCollector(
        settings,
        lineage,
        group=args.group,
        max_batch=args.max_batch,
        release_every=int(os.environ.get("BENCH_RELEASE_EVERY", "0")),
    )
    _probe_memory(collector, lineage)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await collector.start()
        await stop.wait()
    finally:
        await collector.stop()
        # What DuckDB itself holds, by tag (indexes are not evicted to disk).
        rows = await lineage.read(
            lambda c: c.execute(
                "SELECT tag, memory_usage_bytes FROM duckdb_memory() "
                "WHERE memory_usage_bytes > 0 ORDER BY 2 DESC"
            ).fetchall()
        )
        held = ", ".join(f"{tag} {size / 1e6:.0f} MB" for tag, size in rows)
        print(f"  duckdb memory at stop: {held or 'none'}", file=sys.stderr, flush=True)
        await lineage.close()


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU time a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def kafka_collector(
    settings: KafkaSettings, n: int, path: Path
) -> tuple[float, float, float]:
    """The collector as its own process; (events/s, its peak RSS in MB, its CPU µs/event).

    CPU per event is the collector's own user + system time while it ingested: on
    a machine shared with other work it moves much less than the rate does.
    """
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
        first, started, cpu_started = 0, 0.0, 0.0
        while (done := await committed(settings, group)) < n:
            if not first and done:
                first, started = done, time.perf_counter()
                cpu_started = cpu_seconds_of(proc.pid)
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds_of(proc.pid) - cpu_started
        rss = peak_rss_of(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return (n - first) / elapsed, rss, cpu / (n - first) * 1e6


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
        kafka, collector_rss, cpu_us = await kafka_collector(
            settings, n, Path(tmp) / "kafka" / "lineage.duckdb"
        )
        print(f"Interlock on Kafka, end to end:   {kafka:,.0f} events/s")
        print(f"collector process CPU per event:  {cpu_us:.1f} µs")
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
            collector_cpu_us=round(cpu_us, 1),
            peak_rss_mb=round(collector_rss),
            bench_rss_mb=round(rss),
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--collector-only", action="store_true")
    parser.add_argument("--memory-limit", default="256MB", help="DuckDB memory_limit or ''")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads")
    parser.add_argument(
        "--checkpoint-threshold", type=int, default=0, help="MB of WAL (with --threads only)"
    )
    parser.add_argument("--serve-collector", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--partitions", type=int, default=12, help=argparse.SUPPRESS)
    parser.add_argument("--max-batch", type=int, default=COLLECTOR_BATCH, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_collector:
        gc.set_threshold(50_000, 20, 20)
        asyncio.run(serve_collector(args))
    elif args.collector_only:
        print(f"# collector only, {args.events} events; {load_note()}", flush=True)
        print(
            summary_line(
                **asyncio.run(
                    collector_only(
                        args.events, args.memory_limit, args.threads, args.checkpoint_threshold
                    )
                )
            )
        )
    else:
        asyncio.run(main(args.events))
