"""The collector on Kafka writing the lineage lake, exactly once.

Each fetched batch (all the partitions ``getmany`` returned) is decoded, and its
rows and the offsets it covers commit in one DuckLake transaction
(``LakeStore.commit_batch``). The lake's offsets are the truth: on start and on
every assignment the consumer seeks to them, and the Kafka group offsets are
committed afterwards only as advice for tools that read them. A collector that
lost a partition while it was stopped, paused or partitioned away (a zombie) is
refused by the lake at commit (``LakeFenced``): its batch is dropped, and it seeks
to the lake's offsets of what it still owns.

Messages that do not decode are sent to the dead-letter topic and recorded in the
lineage, in the same transaction as their batch, as open dead letters.

Run as a process with ``python -m collector._lake_ingest --bootstrap HOST:PORT
--data-path DIR [--catalog 'postgres:dbname=… host=…']``; it prints ``ready`` once
it consumes, and leaves on SIGTERM or SIGINT (an unstored batch is fetched again
by the next owner, from the lake's offsets).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from tracing import BusError, ConfigError, StoreError

from ._columns import EnvelopeColumns
from ._config import load_settings
from ._kafka_codec import dead_letter_headers, decode_columns, rejection_event
from ._lake import LakeFenced, LakeSettings, LakeStore, PartitionOffset

__all__ = ["LAKE_GROUP", "LakeCollector", "lake_schema", "main"]

log = logging.getLogger(__name__)

LAKE_GROUP = "interlock-lake-collector"


def lake_schema() -> pa.Schema:
    """The Arrow schema of the lake's events table (the DuckDB lineage's columns)."""
    return EnvelopeColumns().table(datetime.now(UTC))[0].schema


class _Seek(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, collector: LakeCollector) -> None:
        self._collector = collector

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Nothing to hand over: what is stored, the lake's offsets say already.
        # Forget where they stood, so a partition assigned again is sought afresh.
        self._collector.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._collector.seek_to_lake(assigned)
        except StoreError as exc:
            # The lake is unreachable: these partitions stay unsought, and the first
            # batch fetched for them seeks again instead of being stored.
            log.warning("cannot read the lake's offsets on assignment: %s", exc)


class LakeCollector:
    """Consume ``topic`` as ``group`` into ``store`` (``run`` until ``stop``).

    ``stored`` counts the rows this process committed, ``fenced`` the batches the
    lake refused because another member owned their partitions by then, and
    ``failures`` the commits that failed otherwise (the lake unreachable: the
    batch is fetched again from the lake's offsets once it answers).
    """

    def __init__(
        self,
        store: LakeStore,
        *,
        bootstrap: str,
        topic: str,
        dead_letter_topic: str,
        group: str = LAKE_GROUP,
        max_batch: int = 5000,
        session_timeout_ms: int = 10_000,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.group = group
        self.max_batch = max_batch
        self.stored = 0
        self.fenced = 0
        self.failures = 0
        self._next: dict[int, int] = {}
        self._stop = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 6),
            max_poll_interval_ms=max(session_timeout_ms * 3, 30_000),
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def seek_to_lake(self, partitions: set[TopicPartition]) -> None:
        """Move the fetch position of ``partitions`` to the lake's stored offsets."""
        mine = sorted(tp.partition for tp in partitions if tp.topic == self.topic)
        if not mine:
            return
        stored = await asyncio.to_thread(self.store.offsets, self.group, self.topic, mine)
        assignment = self._consumer.assignment()
        for partition, offset in stored.items():
            tp = TopicPartition(self.topic, partition)
            if tp in assignment:
                self._consumer.seek(tp, offset)
                self._next[partition] = offset

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop what this process knew of ``partitions``' offsets (they were revoked)."""
        for tp in partitions:
            if tp.topic == self.topic:
                self._next.pop(tp.partition, None)

    def stop(self) -> None:
        self._stop.set()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        try:
            await self._producer.start()
            await self._consumer.start()
        except KafkaError as exc:
            raise BusError(f"cannot reach Kafka: {exc}") from exc
        try:
            self._consumer.subscribe([self.topic], listener=_Seek(self))
            if ready is not None:
                ready.set()
            while not self._stop.is_set():
                fetched = await self._consumer.getmany(timeout_ms=200, max_records=self.max_batch)
                if fetched:
                    await self._store(fetched)
        finally:
            await self._consumer.stop()
            await self._producer.stop()

    async def _store(self, fetched: dict[TopicPartition, list[object]]) -> None:
        values: list[bytes | None] = []
        headers: list[list[tuple[str, bytes]]] = []
        origin: list[tuple[int, object]] = []
        spans: dict[int, PartitionOffset] = {}
        assignment = self._consumer.assignment()
        unsought: set[TopicPartition] = set()
        for tp, messages in fetched.items():
            start = self._next.get(tp.partition)
            if tp not in assignment:
                continue  # revoked meanwhile: its new owner reads the lake's offset
            if start is None:
                unsought.add(tp)  # not sought to the lake's offset yet: do it now
                continue
            fresh = [m for m in messages if m.offset >= start]  # type: ignore[attr-defined]
            if not fresh:
                continue
            spans[tp.partition] = PartitionOffset(start, fresh[-1].offset + 1)  # type: ignore[attr-defined]
            for m in fresh:
                values.append(m.value)  # type: ignore[attr-defined]
                headers.append(list(m.headers or ()))  # type: ignore[attr-defined]
                origin.append((tp.partition, m))
        if unsought:
            await self._recover(unsought, reopen=False)
        if not spans:
            return
        columns, rejected = decode_columns(values, headers)
        for r in rejected:
            partition, message = origin[r.index]
            await self._dead_letter(partition, message, headers[r.index], r.reason, r.message)
            columns.add_event(
                rejection_event(
                    topic=self.topic,
                    partition=partition,
                    offset=message.offset,  # type: ignore[attr-defined]
                    key=message.key,  # type: ignore[attr-defined]
                    headers=headers[r.index],
                    reason=r.reason,
                    message=r.message,
                    dead_letter_topic=self.dead_letter_topic,
                    size=len(values[r.index] or b""),
                )
            )
        table, _repeats = columns.table(datetime.now(UTC))
        try:
            stored = await asyncio.to_thread(
                self.store.commit_batch, self.group, self.topic, table, spans
            )
        except LakeFenced as exc:
            # A zombie's batch: another member stored these offsets. Drop it and
            # resume from what the lake says for the partitions still ours.
            self.fenced += 1
            log.warning("group %s: batch dropped, %s", self.group, exc)
            for partition in spans:
                self._next.pop(partition, None)
            await self._recover({TopicPartition(self.topic, p) for p in spans}, reopen=False)
            return
        except StoreError as exc:
            # The catalog or the data path failed (PostgreSQL restarting, a full disk):
            # nothing of the batch is stored, or the commit landed and its answer was
            # lost. Either way the lake's offsets say where to fetch from again.
            self.failures += 1
            log.warning("group %s: lake commit failed, fetching again: %s", self.group, exc)
            for partition in spans:
                self._next.pop(partition, None)
            await self._recover({TopicPartition(self.topic, p) for p in spans}, reopen=True)
            return
        self.stored += stored
        for partition, span in spans.items():
            self._next[partition] = span.stop
        await self._advise(spans)

    async def _recover(self, partitions: set[TopicPartition], *, reopen: bool) -> None:
        """Seek ``partitions`` to the lake's offsets, reopening the lake first if
        ``reopen``; retried with a growing pause until the lake answers or ``stop``."""
        delay = 0.25
        while not self._stop.is_set():
            try:
                if reopen:
                    await asyncio.to_thread(self.store.close)
                    await asyncio.to_thread(self.store.open)
                await self.seek_to_lake(partitions)
                return
            except StoreError as exc:
                reopen = True
                log.warning("group %s: the lake is unavailable (%s); retrying", self.group, exc)
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                delay = min(10.0, delay * 2)

    async def _dead_letter(
        self,
        partition: int,
        message: object,
        hdrs: Sequence[tuple[str, bytes]],
        reason: object,
        text: str,
    ) -> None:
        try:
            await self._producer.send_and_wait(
                self.dead_letter_topic,
                message.value,  # type: ignore[attr-defined]
                key=message.key,  # type: ignore[attr-defined]
                headers=dead_letter_headers(
                    hdrs,
                    topic=self.topic,
                    partition=partition,
                    offset=message.offset,  # type: ignore[attr-defined]
                    reason=reason,  # type: ignore[arg-type]
                    message=text,
                ),
            )
        except KafkaError as exc:
            # Not stored, not committed: the batch is fetched again and retried.
            raise BusError(f"dead-letter topic refused a message: {exc}") from exc

    async def _advise(self, spans: dict[int, PartitionOffset]) -> None:
        # The group's offsets only inform lag tools; the lake's decide where to resume.
        offsets = {TopicPartition(self.topic, p): s.stop for p, s in spans.items()}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.info("group %s: advisory offset commit refused (%s)", self.group, exc)


async def _serve(args: argparse.Namespace) -> None:
    # The flags win; what they leave out comes from [lineage] (file and environment).
    lineage = load_settings(args.config).lineage
    settings = LakeSettings(
        Path(args.data_path or lineage.lake_path), args.catalog or lineage.catalog
    )
    store = LakeStore(settings, lake_schema())
    await asyncio.to_thread(store.open)
    collector = LakeCollector(
        store,
        bootstrap=args.bootstrap,
        topic=args.events_topic,
        dead_letter_topic=args.dead_letter_topic,
        group=args.group,
        max_batch=args.max_batch,
        session_timeout_ms=args.session_timeout_ms,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, collector.stop)
    ready = asyncio.Event()
    task = asyncio.ensure_future(collector.run(ready))
    waiter = asyncio.ensure_future(ready.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            print("ready", flush=True)
        await task
    finally:
        waiter.cancel()
        await asyncio.to_thread(store.close)


def main(argv: Sequence[str] | None = None) -> None:
    """Run one lake collector process until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m collector._lake_ingest")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--config", default=None, help="settings file (else INTERLOCK_CONFIG)")
    parser.add_argument(
        "--data-path", default="", help="folder of the lake's Parquet files ([lineage] lake_path)"
    )
    parser.add_argument(
        "--catalog",
        default="",
        help="postgres:<libpq keywords> ([lineage] catalog, INTERLOCK_LINEAGE_CATALOG; "
        "unset: a DuckDB catalog file in the data path, one process only)",
    )
    parser.add_argument("--group", default=LAKE_GROUP)
    parser.add_argument("--events-topic", default="interlock.events")
    parser.add_argument("--dead-letter-topic", default="interlock.dead-letters")
    parser.add_argument("--max-batch", type=int, default=5000)
    parser.add_argument("--session-timeout-ms", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(_serve(args))
    except (BusError, StoreError, ConfigError) as exc:
        raise SystemExit(f"lake collector: {exc}") from exc


if __name__ == "__main__":
    main()
