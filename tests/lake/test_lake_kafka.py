"""Collector processes on Tansu writing one lake over a real PostgreSQL catalog.

Every event published must be in the lake exactly once afterwards, however the
collectors die: SIGKILL at random moments, a collector paused past its session
timeout and resumed (a zombie whose late commit the lake must refuse).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from _events import make_event

from adapters.sandbox.kafka import TansuBroker
from adapters.sandbox.postgres import PostgresCluster
from collector.kafka import KafkaBus, KafkaSettings
from collector.lake import LAKE_GROUP, LakeSettings, LakeStore, lake_schema

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "t.events"
SESSION_MS = 2000


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    with TansuBroker(log_path=tmp_path / "tansu.log") as b:
        yield b


def publish(bootstrap: str, first: int, n: int) -> None:
    async def go() -> None:
        bus = KafkaBus(
            KafkaSettings(
                bootstrap=bootstrap,
                events_topic=TOPIC,
                dead_letter_topic="t.dead",
                partitions=4,
                client_id="test",
            )
        )
        await bus.start()
        try:
            for k in range(first, first + n, 500):
                await asyncio.gather(
                    *(bus.publish(make_event(i)) for i in range(k, min(k + 500, first + n)))
                )
        finally:
            await bus.stop()

    asyncio.run(go())


def start(bootstrap: str, data: Path, catalog: str, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 -- handed to the child
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector.lake",
            "--bootstrap",
            bootstrap,
            "--data-path",
            str(data),
            "--catalog",
            catalog,
            "--events-topic",
            TOPIC,
            "--dead-letter-topic",
            "t.dead",
            "--session-timeout-ms",
            str(SESSION_MS),
            "--max-batch",
            "500",
        ],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    proc.wait(30)


def lake_ids(settings: LakeSettings) -> Counter[str]:
    with LakeStore(settings, lake_schema()) as store:
        return Counter(r[0] for r in store.query("SELECT event_id FROM lake.events"))


def wait_for(settings: LakeSettings, n: int, within: float) -> Counter[str]:
    deadline = time.monotonic() + within
    while True:
        ids = lake_ids(settings)
        if sum(ids.values()) >= n or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


@pytest.mark.slow
def test_kills_and_a_zombie_leave_every_event_exactly_once(
    broker: TansuBroker, catalog: str, tmp_path: Path
) -> None:
    rng = random.Random(15)
    n = 6000
    settings = LakeSettings(tmp_path / "lake", catalog)
    logs = tmp_path / "logs"
    logs.mkdir()
    publish(broker.bootstrap, 0, n // 2)
    procs = [
        start(broker.bootstrap, settings.data_path, catalog, logs / f"c{i}.log") for i in range(3)
    ]
    kills = 0
    try:
        # SIGKILL a random collector at random moments while the rest is published.
        for round_ in range(4):
            time.sleep(rng.uniform(0.5, 2.0))
            victim = rng.randrange(3)
            stop(procs[victim])
            kills += 1
            procs[victim] = start(
                broker.bootstrap, settings.data_path, catalog, logs / f"r{round_}.log"
            )
        # A zombie: paused while it works through a backlog, past its session
        # timeout, while the others take its partitions; resumed, it finishes the
        # batch it held, which the lake must refuse.
        zombie = procs[0]
        os.killpg(zombie.pid, signal.SIGSTOP)
        publish(broker.bootstrap, n // 2, n // 2)
        os.killpg(zombie.pid, signal.SIGCONT)
        time.sleep(0.3)
        os.killpg(zombie.pid, signal.SIGSTOP)
        time.sleep(3 * SESSION_MS / 1000)
        os.killpg(zombie.pid, signal.SIGCONT)
        ids = wait_for(settings, n, within=90)
    finally:
        for p in procs:
            stop(p, signal.SIGTERM)
    twice = [i for i, c in ids.items() if c > 1]
    assert not twice, f"{len(twice)} events stored more than once"
    assert set(ids) == {make_event(i).event_id for i in range(n)}
    assert kills == 4
    with LakeStore(settings, lake_schema()) as store:
        offsets = store.offsets(LAKE_GROUP, TOPIC, [0, 1, 2, 3])
    assert sum(offsets.values()) == n  # each partition's lake offset is its log's end


@pytest.mark.slow
def test_postgres_restarted_during_ingest_loses_and_repeats_nothing(
    broker: TansuBroker, postgres: PostgresCluster, catalog: str, tmp_path: Path
) -> None:
    n = 4000
    settings = LakeSettings(tmp_path / "lake", catalog)
    logs = tmp_path / "logs"
    logs.mkdir()
    publish(broker.bootstrap, 0, n // 2)
    procs = [
        start(broker.bootstrap, settings.data_path, catalog, logs / f"c{i}.log") for i in range(2)
    ]
    try:
        wait_for(settings, n // 2, within=60)
        # The catalog goes away while the second half arrives: every commit fails
        # until it is back.
        postgres.stop()
        try:
            publish(broker.bootstrap, n // 2, n // 2)
            time.sleep(2.0)
        finally:
            postgres.start()
        ids = wait_for(settings, n, within=90)
        alive = [p.poll() is None for p in procs]
    finally:
        for p in procs:
            stop(p, signal.SIGTERM)
    assert alive == [True, True]  # they waited for the catalog, none gave up
    assert max(ids.values()) == 1
    assert set(ids) == {make_event(i).event_id for i in range(n)}
