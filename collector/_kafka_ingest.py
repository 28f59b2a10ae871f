"""The collector on Kafka: a consumer group feeding the DuckDB lineage.

Each fetched batch is decoded and validated, undecodable messages go to the
dead-letter topic (and their record into the lineage), the batch is written in
one DuckDB transaction, and only then are the offsets committed. Run as a
process with ``python -m collector._kafka_ingest --bootstrap HOST:PORT --db FILE``.

A batch write that fails is retried, split, and its poison rows dead-lettered
(``collector._kafka_store``); the batch size is bounded by the lineage's memory
limit. With ``--metrics-port`` the process serves ``/metrics`` (lag per partition,
oldest unprocessed age, failed writes, restarts, seconds since the last commit)
and ``/healthz`` (503 once no batch committed for ``--stall-after`` seconds while
messages wait).

Collectors of one group keep their lineage files in one directory, one file each.
When partitions are assigned to a collector it first absorbs the files of
collectors that died (``collector._absorb``), so a batch a dead collector stored
but never committed is not stored a second time in another file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from aiokafka import TopicPartition

from tracing import BusError, ConfigError, Event, StoreError

from ._absorb import AbsorbResult, remove_lineage_file
from ._columns import EnvelopeColumns
from ._kafka import KafkaBus
from ._kafka_consumer import ConsumerLoop
from ._kafka_metrics import KafkaMetrics
from ._kafka_settings import KafkaSettings
from ._kafka_store import WriteRetry
from ._lineage import CHECKPOINT_THRESHOLD, AsyncLineage, LineageStore
from ._memory import release_memory
from ._metrics_server import MetricsServer

__all__ = ["COLLECTOR_FETCH_MAX_BYTES", "DEFAULT_GROUP", "RELEASE_EVERY", "KafkaCollector", "main"]

log = logging.getLogger(__name__)

DEFAULT_GROUP = "interlock-collector"
#: Kafka fetch size of the collector process. aiokafka keeps a fetched response
#: buffered while the previous batch is decoded and the one before it stored;
#: 2 MiB instead of the bus default of 8 MiB lowered the peak by ~45 MB at 1 M
#: events (docs/performance.md).
COLLECTOR_FETCH_MAX_BYTES = 2 * 1024 * 1024
#: Batches between ``release_memory`` calls in the collector process (~2 ms each).
RELEASE_EVERY = 10


class KafkaCollector:
    """Consume ``settings.events_topic`` as ``group`` into ``lineage``.

    ``start``/``stop`` are safe twice. ``stored`` and ``duplicates`` count what
    the lineage reported for the batches written by this process. With
    ``siblings`` (a directory), lineage files there that no process holds and
    that collectors of the same group and topic wrote are absorbed into this one
    whenever partitions are assigned (``absorbed`` lists them).
    Every ``release_every`` stored batches (0: never) freed memory is handed back
    to the OS, so the process does not keep its high-water mark. Batches hold at
    most ``max_batch`` rows and no more than the lineage's memory limit allows
    (``MemoryGuard.max_rows``); failed writes are retried as ``write_retry`` says.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        lineage: AsyncLineage,
        *,
        group: str = DEFAULT_GROUP,
        metrics: KafkaMetrics | None = None,
        max_batch: int | None = None,
        siblings: Path | None = None,
        release_every: int = 0,
        write_retry: WriteRetry | None = None,
    ) -> None:
        if release_every < 0:
            raise ValueError("release_every must not be negative")
        self.settings = settings
        self.lineage = lineage
        self.group = group
        self.bus = KafkaBus(settings, metrics=metrics)
        self._max_batch = max_batch
        self._write_retry = write_retry
        self._release_every = release_every
        self._loop: ConsumerLoop | None = None
        self.stored = 0
        self.duplicates = 0
        self.batches = 0
        self._siblings = siblings
        self.absorbed: list[AbsorbResult] = []

    @property
    def metrics(self) -> KafkaMetrics:
        return self.bus.metrics

    @property
    def loop(self) -> ConsumerLoop | None:
        """The consumer loop while started."""
        return self._loop

    def health(self) -> str:
        """``"ok"``, or why the consumer is stalled (``ConsumerLoop.health``)."""
        return self._loop.health() if self._loop is not None else "not started"

    @property
    def processed(self) -> int:
        """Messages whose offsets this process committed."""
        return self._loop.processed if self._loop else 0

    async def start(self) -> None:
        if self._loop is not None:
            return
        await self.bus.start()
        if self._siblings is not None:
            await self.lineage.claim_group(self.group, self.settings.events_topic)
        # The fast path: message bodies decoded straight into lineage columns.
        self._loop = loop = self.bus.subscribe_columns(
            self.group,
            self._write_columns,
            max_batch=self._max_batch,
            on_assigned=self._absorb_siblings if self._siblings is not None else None,
            write_retry=self._write_retry,
        )
        fits = self.lineage.store.memory.max_rows()
        if fits is not None:
            loop.bound_batches(fits)

    async def wait_ready(self, within: float = 10.0) -> None:
        """Wait until the consumer has joined Kafka (not necessarily got partitions)."""
        if self._loop is not None:
            await asyncio.wait_for(self._loop.ready.wait(), within)

    async def stop(self) -> None:
        """Stop consuming (an unfinished batch is not committed, so it is redelivered)."""
        self._loop = None
        await self.bus.stop()

    async def _absorb_siblings(self, assigned: frozenset[TopicPartition]) -> None:
        # Runs before the new partitions are fetched: a batch a dead collector
        # stored but did not commit is then in this file already, and fetching it
        # again only meets the dedupe on event ID.
        if self._siblings is None:
            return
        for path in await asyncio.to_thread(_siblings, self._siblings, self.lineage.store.path):
            result = await self.lineage.absorb(path, group=(self.group, self.settings.events_topic))
            if result is None:
                continue  # a live collector holds it, or another group wrote it
            await asyncio.to_thread(remove_lineage_file, path)
            self.absorbed.append(result)

    async def _write_columns(self, columns: EnvelopeColumns) -> None:
        if not len(columns):
            return
        outcome = await self.lineage.write_columns(columns)
        self.stored += outcome.result.inserted
        self.duplicates += outcome.result.duplicates
        self.batches += 1
        if self._release_every and self.batches % self._release_every == 0:
            release_memory()

    async def _write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        result = await self.lineage.write_batch(events)
        self.stored += result.inserted
        self.duplicates += result.duplicates
        self.batches += 1


async def _serve(args: argparse.Namespace) -> None:
    settings = KafkaSettings(
        bootstrap=args.bootstrap,
        events_topic=args.events_topic,
        dead_letter_topic=args.dead_letter_topic,
        partitions=args.partitions,
        client_id=args.client_id,
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=max(100, args.session_timeout_ms // 6),
        fetch_max_bytes=args.fetch_max_bytes,
        stall_after=args.stall_after,
    )
    # Without a limit DuckDB's buffer pool grows towards 80 % of RAM with what is
    # stored. Under a limit the store checkpoints early and the batches shrink to
    # fit; only a limit below DuckDB's indexes stalls ingest (docs/performance.md).
    db = Path(args.db)
    store = LineageStore(
        db,
        memory_limit=args.memory_limit or None,
        threads=args.threads,
        checkpoint_threshold=args.checkpoint_threshold,
    )
    lineage = AsyncLineage(store)
    if not args.no_absorb and _rejoining_beside_others(db):
        # Coming back on a file that may hold a batch stored but never committed,
        # while other collectors run: let this process's previous group member
        # expire first, so the collector that takes its partitions absorbs this
        # file before it fetches them (instead of storing that batch again).
        wait = 2 * args.session_timeout_ms / 1000 + 1
        log.warning("waiting %.1f s for the group to let go of this collector's last run", wait)
        await asyncio.sleep(wait)
    await _open_when_free(lineage, within=120.0)
    collector = KafkaCollector(
        settings,
        lineage,
        group=args.group,
        max_batch=args.max_batch,
        siblings=None if args.no_absorb else db.parent,
        release_every=args.release_every,
    )
    server = None
    if args.metrics_port:

        async def checks() -> dict[str, str]:
            return {"consumer": collector.health(), "lineage": await _lineage_check(lineage)}

        server = MetricsServer(
            collector.metrics.registry, checks, host=args.metrics_host, port=args.metrics_port
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await collector.start()
        if server is not None:
            await server.start()
        print("ready", flush=True)
        await stop.wait()
    finally:
        if server is not None:
            await server.stop()
        await collector.stop()
        await lineage.close()


async def _lineage_check(lineage: AsyncLineage) -> str:
    try:
        await lineage.read(lambda c: c.execute("SELECT 1").fetchone())
    except StoreError as exc:
        return f"error: {exc}"
    return "ok"


def _rejoining_beside_others(db: Path) -> bool:
    return db.exists() and bool(_siblings(db.parent, str(db)))


def _siblings(directory: Path, own: str) -> list[Path]:
    mine = Path(own).resolve()
    return [p for p in sorted(directory.glob("*.duckdb")) if p.resolve() != mine]


async def _open_when_free(lineage: AsyncLineage, *, within: float) -> None:
    # A survivor may be absorbing this file right now (this process died and came
    # back): wait for it to finish, then start on a fresh file.
    deadline = time.monotonic() + within
    while True:
        try:
            await lineage.open()
            return
        except StoreError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            log.warning("lineage file is in use (%s); waiting", exc)
            await asyncio.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> None:
    """Run one collector process until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m collector._kafka_ingest")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument(
        "--db",
        required=True,
        help="the DuckDB lineage file; the other collectors of the group keep theirs beside it",
    )
    parser.add_argument(
        "--no-absorb",
        action="store_true",
        help="do not absorb the lineage files of dead collectors found beside --db",
    )
    parser.add_argument("--group", default=DEFAULT_GROUP)
    parser.add_argument("--events-topic", default="interlock.events")
    parser.add_argument("--dead-letter-topic", default="interlock.dead-letters")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--client-id", default="interlock-collector")
    parser.add_argument("--max-batch", type=int, default=5000)
    parser.add_argument(
        "--fetch-max-bytes",
        type=int,
        default=COLLECTOR_FETCH_MAX_BYTES,
        help="bytes per Kafka fetch (at most 1 MiB of it per partition)",
    )
    parser.add_argument("--session-timeout-ms", type=int, default=10_000)
    parser.add_argument("--memory-limit", default="", help="DuckDB memory_limit, e.g. 384MB")
    # One DuckDB thread: this process only ingests, and a second thread cost about a
    # fifth more CPU per event for no gain in rate (docs/performance.md).
    parser.add_argument("--threads", type=int, default=1, help="DuckDB worker threads")
    parser.add_argument(
        "--checkpoint-threshold",
        default=CHECKPOINT_THRESHOLD,
        help="WAL size at which DuckDB checkpoints; rows not yet checkpointed stay in memory",
    )
    parser.add_argument(
        "--release-every",
        type=int,
        default=RELEASE_EVERY,
        help="hand freed memory back to the OS every N stored batches (0: never)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve /metrics and /healthz on this port (0: not at all)",
    )
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    parser.add_argument(
        "--stall-after",
        type=float,
        default=300.0,
        help="seconds without a committed batch, while messages wait, before /healthz "
        "says unhealthy",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.metrics_port < 65536:
        parser.error(f"--metrics-port must be a TCP port, got {args.metrics_port}")
    logging.basicConfig(level=logging.WARNING)
    # Decoding allocates many short-lived objects; a higher threshold for the
    # youngest generation halves the time spent in the cycle collector.
    gc.set_threshold(50_000, 20, 20)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_serve(args))
    except (BusError, StoreError, ConfigError) as exc:
        # A clear line for the operator (or the supervisor's log), not a traceback.
        raise SystemExit(f"collector: {exc}") from exc


if __name__ == "__main__":
    main()
