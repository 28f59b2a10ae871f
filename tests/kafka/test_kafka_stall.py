"""A collector whose lineage writes fail carries on: retried, split, dead-lettered, visible."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
from _procs import ROOT, kill, stored_ids
from conftest import make_event

from adapters.sandbox import free_port
from collector._kafka_store import WriteRetry
from collector.kafka import KafkaBus, KafkaCollector
from collector.lineage import AsyncLineage, LineageStore


async def _wait(predicate, within: float = 45.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


class _FailingStore(LineageStore):
    """Fails the first batch write (out of memory) and every write holding ``poison``."""

    def __init__(self, poison: str) -> None:
        super().__init__(threads=1)
        self.poison = poison
        self.failed_once = False

    def _write_locked(self, conn, batch, delivered, **kw):  # type: ignore[no-untyped-def]
        if not self.failed_once:
            self.failed_once = True
            raise duckdb.OutOfMemoryException("injected: failed to allocate")
        if self.poison in batch.column("event_id").to_pylist():
            raise duckdb.ConversionException("injected: cannot convert")
        return super()._write_locked(conn, batch, delivered, **kw)


async def test_a_failed_and_a_poison_write_leave_the_consumer_storing_everything_else(settings):
    events = [make_event(i) for i in range(400)]
    bus = KafkaBus(settings)
    await bus.start()
    await bus.publish_many(events)
    await bus.stop()
    poison = events[123].event_id
    store = _FailingStore(poison)
    lineage = AsyncLineage(store)
    await lineage.open()
    collector = KafkaCollector(settings, lineage, write_retry=WriteRetry(base_delay=0.01))
    await collector.start()
    try:
        await _wait(lambda: collector.processed >= 400)
        health = collector.health()
    finally:
        await collector.stop()
    ids = await lineage.read(
        lambda c: [
            r[0] for r in c.execute("SELECT event_id FROM events WHERE status='ok'").fetchall()
        ]
    )
    letters = await lineage.read(
        lambda c: c.execute("SELECT step, reason, error_message FROM dead_letters").fetchall()
    )
    await lineage.close()
    assert sorted(ids) == sorted(e.event_id for e in events if e.event_id != poison)
    assert len(ids) == len(set(ids)) == 399
    # The store splits a batch whose rows it cannot convert itself: the poison row is a
    # validation dead letter of its own and the other 399 land in the same write.
    assert len(letters) == 1 and letters[0][:2] == ("collector.validate", "validation")
    reg = collector.metrics.registry
    group = "interlock-collector"
    assert (
        reg.get_sample_value(
            "interlock_kafka_batch_write_failures_total", {"group": group, "kind": "resource"}
        )
        == 1
    )
    assert health == "ok"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310  # our http URL
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_a_collector_under_a_small_memory_limit_ingests_every_event_once(settings, tmp_path):
    """32MB: the old writer died here (its rollback raised after a failed COMMIT)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from ingest import produce_stream

    n = 40_000
    await produce_stream(settings, n)
    port = free_port()
    db = tmp_path / "lineage.duckdb"
    log = open(tmp_path / "collector.log", "ab")  # noqa: SIM115, ASYNC230  # before timing
    proc = subprocess.Popen(  # noqa: ASYNC220  # started once
        [
            sys.executable,
            "-m",
            "collector._kafka_ingest",
            "--bootstrap",
            settings.bootstrap,
            "--db",
            str(db),
            "--events-topic",
            settings.events_topic,
            "--dead-letter-topic",
            settings.dead_letter_topic,
            "--partitions",
            str(settings.partitions),
            "--memory-limit",
            "32MB",
            "--metrics-port",
            str(port),
            "--stall-after",
            "120",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"

    def consumed() -> float:
        try:
            _, text = _get(f"{base}/metrics")
        except OSError:
            return 0.0
        for line in text.splitlines():
            if line.startswith("interlock_kafka_consumed_total{"):
                return float(line.split()[-1])
        return 0.0

    try:
        await _wait(lambda: proc.poll() is None and consumed() >= n, within=55)
        status, text = _get(f"{base}/metrics")
        assert status == 200
        for name in (
            "interlock_kafka_consumer_lag{",
            "interlock_kafka_oldest_unprocessed_age_seconds",
            "interlock_kafka_seconds_since_last_commit",
            "interlock_kafka_consumer_stalled",
            "interlock_kafka_consumer_restarts_total",
            "interlock_kafka_batch_write_failures",
        ):
            assert name in text, name
        status, body = _get(f"{base}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        kill(proc, 15)
    ids = stored_ids(Path(db))
    assert len(ids) == len(set(ids)) == n
