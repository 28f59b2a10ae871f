"""Lake collectors end to end: Kafka (Tansu) into DuckLake over a private PostgreSQL catalog.

    python bench/lake.py [--events N] [--collectors 1,2] [--kills K]

Publishes N events, then for each collector count runs that many
``collector.lake`` processes on a fresh lake until every event is stored,
and prints the rate from the first stored batch to the last. With ``--kills K``
one more run of three collectors SIGKILLs a random one K times while it drains
(restarting it each time) and checks every event is in the lake exactly once.
Not a test; the last line is ``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_note, make_events, summary_line
from aiokafka import AIOKafkaProducer

from adapters.sandbox.kafka import TansuBroker
from adapters.sandbox.postgres import PostgresCluster
from collector.kafka import KafkaSettings, encode_event, ensure_topics
from collector.lake import LakeSettings, LakeStore, lake_schema

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "bench.events"


async def publish(bootstrap: str, n: int) -> set[str]:
    settings = KafkaSettings(
        bootstrap=bootstrap, events_topic=TOPIC, dead_letter_topic="bench.dead", partitions=4
    )
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    ids: set[str] = set()
    try:
        for start in range(0, n, 10_000):
            events = make_events(min(10_000, n - start))
            futures = []
            for e in events:
                key, value, headers = encode_event(e, {})
                futures.append(await producer.send(TOPIC, value, key=key, headers=headers))
                ids.add(e.event_id)
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return ids


def collector(bootstrap: str, lake: LakeSettings, group: str, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 -- handed to the child
    # fmt: off
    argv = [
        sys.executable, "-m", "collector.lake", "--bootstrap", bootstrap,
        "--data-path", str(lake.data_path), "--catalog", str(lake.catalog),
        "--events-topic", TOPIC, "--dead-letter-topic", "bench.dead", "--group", group,
        "--session-timeout-ms", "3000",
    ]
    # fmt: on
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc


def stored(lake: LakeSettings) -> tuple[int, int]:
    """(rows, distinct event IDs) in the lake."""
    with LakeStore(lake, lake_schema()) as store:
        row = store.query("SELECT count(*), count(DISTINCT event_id) FROM lake.events")[0]
    return int(row[0]), int(row[1])


def drain(
    bootstrap: str, lake: LakeSettings, n: int, procs: int, logs: Path, kills: int = 0
) -> tuple[float, int, int]:
    """Run ``procs`` collectors until ``n`` rows are stored; (events/s, rows, distinct)."""
    group = f"bench-{procs}-{kills}-{time.monotonic_ns()}"
    rng = random.Random(15)
    running = [collector(bootstrap, lake, group, logs / f"{group}-{i}.log") for i in range(procs)]
    started = time.perf_counter()
    first: float | None = None
    rows = distinct = 0
    done_kills = 0
    try:
        while rows < n:
            time.sleep(0.25 if kills else 0.5)
            if done_kills < kills:
                victim = rng.randrange(procs)
                time.sleep(rng.uniform(0.2, 1.0))
                running[victim].send_signal(signal.SIGKILL)
                running[victim].wait()
                done_kills += 1
                log = logs / f"{group}-k{done_kills}.log"
                running[victim] = collector(bootstrap, lake, group, log)
            rows, distinct = stored(lake)
            if rows and first is None:
                first = time.perf_counter()
            if time.perf_counter() - started > 900:
                break
        elapsed = time.perf_counter() - (first or started)
    finally:
        for p in running:
            p.send_signal(signal.SIGTERM)
        for p in running:
            p.wait(60)
    return n / elapsed, rows, distinct


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/lake.py")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--collectors", default="1,2")
    parser.add_argument("--kills", type=int, default=0)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.collectors.split(",") if c]
    folder = Path(tempfile.mkdtemp(prefix="interlock-lake-bench-"))
    folder.chmod(0o755)  # the cluster runs as the postgres user
    figures: dict[str, float | int | str] = {"events": args.events}
    try:
        with PostgresCluster(folder / "pg") as pg, TansuBroker() as broker:
            asyncio.run(publish(broker.bootstrap, args.events))
            runs = [(c, 0) for c in counts] + ([(3, args.kills)] if args.kills else [])
            for i, (procs, kills) in enumerate(runs):
                pg.createdb(f"lake{i}")
                lake = LakeSettings(folder / f"lake{i}", pg.catalog(f"lake{i}"))
                with LakeStore(lake, lake_schema()):
                    pass  # the table exists before the collectors race to create it
                rate, rows, distinct = drain(
                    broker.bootstrap, lake, args.events, procs, folder, kills
                )
                name = f"c{procs}" + (f"_k{kills}" if kills else "")
                print(f"{procs} collector(s), {kills} kills: {rate:,.0f} events/s, "
                      f"{rows} rows, {distinct} distinct of {args.events}")  # fmt: skip
                figures[f"{name}_events_s"] = round(rate)
                figures[f"{name}_rows"] = rows
                figures[f"{name}_distinct"] = distinct
            if "c1_events_s" in figures and "c2_events_s" in figures:
                figures["scale_2_over_1"] = round(
                    float(figures["c2_events_s"]) / float(figures["c1_events_s"]), 2
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(load_note())
    print(summary_line(**figures))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
