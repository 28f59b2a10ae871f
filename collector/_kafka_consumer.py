"""One consumer-group loop shared by bus subscribers and the collector.

Each round fetches a batch, decodes and validates it, sends what cannot be
decoded to the dead-letter topic (with the reason in headers), hands the rest to
``process`` and only then commits the offsets. A crash anywhere before the
commit means redelivery, never loss; the lineage's dedupe on event ID turns the
redelivery into exactly-once storage.

Across a rebalance, and when the loop stops: the batch in flight is stored and its
offsets committed first (so the next owner does not fetch it again), and a batch
fetched in an older group generation is dropped rather than stored. When
partitions are assigned, ``on_assigned`` runs before anything is fetched from
them (the collector absorbs the lineage files of collectors that died there).

A batch of lineage columns is stored through ``collector._kafka_store.BatchWriter``:
a failed write is retried, split, and its poison rows dead-lettered, so one bad
batch never leaves the loop alive but idle. Any other error restarts the
consumer from the committed offsets, with a growing pause; ``progress`` reports
restarts, the time since the last commit and stalls (``health()``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from tracing import BusError, Event, Reason, StoreError

from ._columns import EnvelopeColumns
from ._kafka_codec import (
    Headers,
    Rejected,
    dead_letter_headers,
    decode_batch,
    decode_columns,
    rejection_event,
)
from ._kafka_metrics import KafkaMetrics
from ._kafka_progress import ConsumerProgress
from ._kafka_settings import KafkaSettings
from ._kafka_store import BatchWriter, WriteRetry

__all__ = ["Assigned", "ConsumerLoop", "Delivery", "Process", "ProcessColumns"]

log = logging.getLogger(__name__)


_UNASSIGNED_RESTART_S = 5.0
_RESTART_DELAY_S = 0.2
_RESTART_DELAY_MAX_S = 5.0


class _LogReset(Exception):
    """The broker's logs no longer match this consumer's positions."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One decoded message with its place in the log and its headers."""

    event: Event
    partition: int
    offset: int
    headers: Headers
    key: bytes | None


@dataclass(frozen=True, slots=True)
class _Batch:
    deliveries: list[Delivery]
    rejections: list[Event]
    offsets: dict[TopicPartition, OffsetAndMetadata]
    size: int
    member: object
    #: The good messages as lineage columns, when the loop decodes to columns.
    columns: EnvelopeColumns | None = None
    #: Headers of the good messages (for span links), with ``columns``.
    headers: list[Headers] | None = None
    #: The group generation the batch was fetched in.
    generation: object = None
    #: Where each row of ``columns`` came from (to dead-letter a row the store refuses).
    records: list[tuple[TopicPartition, ConsumerRecord]] | None = None


#: Handles a batch: the good deliveries in log order, and the lineage records of
#: the messages sent to the dead-letter topic. Returns once they are durable.
Process = Callable[[Sequence[Delivery], Sequence[Event]], Awaitable[None]]

#: The collector's faster twin of ``Process``: the good messages decoded
#: straight into lineage columns (no ``Event`` objects), the dead-letter records,
#: and the good messages' headers. Returns once they are durable.
ProcessColumns = Callable[[EnvelopeColumns, Sequence[Event], Sequence[Headers]], Awaitable[None]]

#: Runs when partitions are assigned, before anything is fetched from them.
Assigned = Callable[[frozenset[TopicPartition]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A batch being stored; its offsets are committed once ``stored`` is done."""

    batch: _Batch
    stored: asyncio.Future[None]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Settle the batch in flight before partitions go; prepare before new ones come."""

    def __init__(self, loop: ConsumerLoop, consumer: AIOKafkaConsumer) -> None:
        self._loop = loop
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The next owner starts from the committed offsets: commit what is stored
        # now, while this member may still commit, so it is not fetched again.
        await self._loop._revoke(self._consumer)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._loop._assign(frozenset(assigned))


class ConsumerLoop:
    """Consume ``settings.events_topic`` as ``group``; ``run()`` until cancelled."""

    def __init__(
        self,
        settings: KafkaSettings,
        group: str,
        process: Process,
        *,
        producer: AIOKafkaProducer,
        metrics: KafkaMetrics,
        max_batch: int | None = None,
        process_columns: ProcessColumns | None = None,
        on_assigned: Assigned | None = None,
        write_retry: WriteRetry | None = None,
    ) -> None:
        self.settings = settings
        self.group = group
        self._process = process
        self._process_columns = process_columns
        self._on_assigned = on_assigned
        self._in_flight: _InFlight | None = None
        self._settle_lock = asyncio.Lock()
        # Set from the moment partitions are revoked until the new ones are assigned.
        self._rebalancing = False
        self._failure: Exception | None = None
        self._producer = producer
        self._metrics = metrics
        self._max_batch = max_batch or settings.max_batch
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()
        self.processed = 0
        self._highwater: dict[TopicPartition, int] = {}
        self._unassigned_since: float | None = None
        self._member: object = None
        # Offsets this member committed last, per partition (the lag's floor).
        self._committed: dict[TopicPartition, int] = {}
        self._failed_runs = 0
        self.progress = ConsumerProgress(group, metrics, stall_after=settings.stall_after)
        self.writer = BatchWriter(group, metrics, max_rows=self._max_batch, retry=write_retry)

    def bound_batches(self, rows: int) -> None:
        """Fetch and write at most ``rows`` messages at once (e.g. what fits the
        lineage's memory limit)."""
        self._max_batch = max(1, min(self._max_batch, rows))
        self.writer.bound(rows)

    def health(self) -> str:
        """``"ok"``, or why this group is stalled (no commit for ``stall_after`` while
        messages wait), with the last error."""
        return self.progress.health()

    def _make_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.servers,
            client_id=f"{s.client_id}-{self.group}",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            # A broker that lost its topics (restart without storage) recreates
            # them; notice that soon instead of after the default five minutes.
            metadata_max_age_ms=2_000,
            max_partition_fetch_bytes=min(s.fetch_max_bytes, 1024 * 1024),
            fetch_max_bytes=s.fetch_max_bytes,
            fetch_max_wait_ms=100,
            request_timeout_ms=max(int(s.ack_timeout * 1000), 5_000),
        )
        consumer.subscribe([s.events_topic], listener=_Rebalance(self, consumer))
        return consumer

    async def run(self) -> None:
        """Consume until cancelled; broker outages are waited out, not fatal."""
        while True:
            consumer = self._make_consumer()
            try:
                await consumer.start()
            except KafkaError as exc:
                log.warning("group %s cannot reach Kafka yet (%s); retrying", self.group, exc)
                await _close(consumer)
                await asyncio.sleep(0.5)
                continue
            except BaseException:
                await _close(consumer)  # cancelled while joining: leave no consumer behind
                raise
            self._consumer = consumer
            self.writer.resume()
            self._member = None
            self._highwater.clear()
            self._rebalancing = False
            self._failure = None
            self.ready.set()
            try:
                await self._consume(consumer)
            # Anything retriable restarts from the last committed offsets: nothing
            # after them was acknowledged to Kafka, so nothing is skipped.
            except (KafkaError, IllegalStateError, BusError, StoreError, _LogReset) as exc:
                self._restarted(exc)
                log.warning("group %s lost its consumer (%s); starting a new one", self.group, exc)
            # Anything else too: a loop that ended here would leave the process up and
            # storing nothing. It is logged with its traceback, counted, and restarted.
            except Exception as exc:
                self._restarted(exc)
                log.exception("group %s: consumer failed; starting a new one", self.group)
            finally:
                self._consumer = None
                await _close(consumer)
            # A consumer that keeps failing waits longer each time, up to a few seconds.
            delay = _RESTART_DELAY_S * 2 ** min(max(self._failed_runs - 1, 0), 5)
            await asyncio.sleep(min(_RESTART_DELAY_MAX_S, delay))

    def _restarted(self, exc: BaseException) -> None:
        self._failed_runs += 1
        self._metrics.restarts.labels(self.group, type(exc).__name__).inc()
        self.progress.restarted(f"{type(exc).__name__}: {exc}")

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        # One batch is stored while the next is fetched and decoded (DuckDB works
        # outside the interpreter lock, so this uses a second core). Offsets are
        # still committed in order, each only after its own batch is stored.
        try:
            while True:
                batch = await self._fetch(consumer)
                async with self._settle_lock:
                    await self._settle_locked(consumer)
                    if batch is None:
                        continue
                    if self._rebalancing or _membership(consumer)[0] != batch.generation:
                        # Fetched for partitions this member may no longer own, or while
                        # the new ones are being prepared: storing it now could store it
                        # twice. Drop it and fetch again from the committed offsets.
                        log.info("group %s: batch dropped across a rebalance", self.group)
                        self.progress.abandoned(id(batch))
                        await _rewind(consumer, batch.offsets)
                        continue
                    self._in_flight = _InFlight(batch, asyncio.ensure_future(self._store(batch)))
        finally:
            await self._finish_on_exit(consumer)

    async def _finish_on_exit(self, consumer: AIOKafkaConsumer) -> None:
        # Leaving (stopped, or restarting the consumer): a store in flight runs on
        # the lineage's writer thread and commits whatever happens here, so commit
        # its offsets too if this member still may; otherwise the next owner of its
        # partitions would fetch and store that batch again.
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return
        self.writer.stop_retrying()
        try:
            await asyncio.shield(self._finish(consumer, in_flight.batch, in_flight.stored))
        except (asyncio.CancelledError, Exception) as exc:
            log.info("group %s: last batch left uncommitted (%s)", self.group, exc)

    async def _revoke(self, consumer: AIOKafkaConsumer) -> None:
        """Before partitions go: store and commit the batch in flight, start no other."""
        async with self._settle_lock:
            self._rebalancing = True
            try:
                await self._settle_locked(consumer)
            # The listener's errors are only logged by aiokafka: keep this one for
            # the loop, which restarts the consumer from the committed offsets.
            except Exception as exc:
                self._failure = exc

    async def _assign(self, assigned: frozenset[TopicPartition]) -> None:
        # Another member may have committed these partitions since this one did.
        self._committed.clear()
        try:
            if self._on_assigned is not None:
                await self._on_assigned(assigned)
        except Exception as exc:
            self._failure = exc
        finally:
            self._rebalancing = False

    async def _settle_locked(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the batch in flight to be stored, then commit its offsets."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        in_flight = self._in_flight
        if in_flight is not None:
            # Cleared only once its offsets are committed: cancelled while waiting
            # here (the collector stopping), the batch is still in flight for
            # ``_finish_on_exit``, which commits what the writer thread stores anyway.
            try:
                await self._finish(consumer, in_flight.batch, in_flight.stored)
            except Exception:
                self._in_flight = None
                raise
            self._in_flight = None

    async def _fetch(self, consumer: AIOKafkaConsumer) -> _Batch | None:
        membership = _membership(consumer)
        # The writer's budget bounds what is fetched at once: halved when the
        # lineage runs out of memory, grown back after successes.
        fetched = await consumer.getmany(timeout_ms=200, max_records=self.writer.budget)
        self._check_member(consumer, membership)
        self._check_log_continuity(consumer)
        if not fetched:
            self._update_lag(consumer)
            return None
        records = [(tp, m) for tp, msgs in fetched.items() for m in msgs]
        oldest_ms = float(min(m.timestamp for _, m in records))
        self._metrics.batch_size.labels(self.group).observe(len(records))
        batch = await self._decode(records, fetched, membership)
        self.progress.fetched(id(batch), oldest_ms)
        self._update_lag(consumer)
        return batch

    async def _decode(
        self,
        records: list[tuple[TopicPartition, ConsumerRecord]],
        fetched: dict[TopicPartition, list[ConsumerRecord]],
        membership: tuple[object, object],
    ) -> _Batch:
        offsets = {tp: OffsetAndMetadata(msgs[-1].offset + 1, "") for tp, msgs in fetched.items()}
        values = [m.value for _, m in records]
        headers = [m.headers for _, m in records]
        if self._process_columns is not None:
            columns, rejected = decode_columns(values, headers)
            rejections: list[Event] = []
            good = records
            if rejected:
                rejections = await self._dead_letter(records, rejected)
                bad = {r.index for r in rejected}
                headers = [h for i, h in enumerate(headers) if i not in bad]
                good = [r for i, r in enumerate(records) if i not in bad]
            return _Batch(
                [],
                rejections,
                offsets,
                len(records),
                membership[1],
                columns,
                headers,
                generation=membership[0],
                records=good,
            )
        decoded = decode_batch(values, headers)
        rejections = []
        if decoded.rejected:
            rejections = await self._dead_letter(records, decoded.rejected)
        deliveries = [
            Delivery(e, records[i][1].partition, records[i][1].offset, records[i][1].headers, None)
            for i, e in decoded.events
        ]
        return _Batch(
            deliveries, rejections, offsets, len(records), membership[1], generation=membership[0]
        )

    async def _store(self, batch: _Batch) -> None:
        started = time.perf_counter()
        if batch.columns is not None and self._process_columns is not None:
            await self._store_columns(batch, batch.columns, self._process_columns)
        else:
            await self._process(batch.deliveries, batch.rejections)
        self._metrics.commit_seconds.labels(self.group, "store").observe(
            time.perf_counter() - started
        )

    async def _store_columns(
        self, batch: _Batch, columns: EnvelopeColumns, process: ProcessColumns
    ) -> None:
        headers = batch.headers or []
        records = batch.records or []
        whole = len(columns)

        async def write(start: int, stop: int, events: Sequence[Event]) -> None:
            # ``process`` appends ``events`` to the columns it gets: a retry must
            # not find them there already, so any part but the plain whole is a copy.
            whole_batch = (start, stop) == (0, whole) and not events
            part = columns if whole_batch else columns.subset(start, stop)
            await process(part, events, headers[start:stop])

        async def dead_letter(index: int, message: str) -> Event:
            rejected = Rejected(0, Reason.VALIDATION, f"the lineage cannot store it: {message}")
            letters = await self._dead_letter([records[index]], [rejected], step="collector.store")
            return letters[0]

        await self.writer.store(whole, batch.rejections, write, dead_letter)

    async def _finish(
        self, consumer: AIOKafkaConsumer, batch: _Batch, stored: asyncio.Future[None]
    ) -> None:
        try:
            await self._finish_batch(consumer, batch, stored)
        except BaseException:
            self.progress.abandoned(id(batch))
            raise

    async def _finish_batch(
        self, consumer: AIOKafkaConsumer, batch: _Batch, stored: asyncio.Future[None]
    ) -> None:
        # Shielded: cancelling this wait (the collector stopping) must not cancel the
        # store, whose DuckDB commit goes ahead on the writer thread regardless.
        await asyncio.shield(stored)
        if batch.member and _membership(consumer)[1] != batch.member:
            # The broker forgot us while we worked (it restarted, or the session
            # expired): these offsets may belong to a log that no longer exists.
            # Leave them uncommitted; redelivery is deduplicated by the lineage.
            raise _LogReset("group membership was lost during the batch")
        started = time.perf_counter()
        try:
            await consumer.commit(batch.offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us: the new owner gets this batch again
            # and the lineage's dedupe keeps it from counting twice.
            self._metrics.commit_failures.labels(self.group).inc()
            log.warning(
                "group %s: offset commit refused (%s); batch will be redelivered", self.group, exc
            )
            self.progress.abandoned(id(batch))
            return
        self._metrics.commit_seconds.labels(self.group, "offsets").observe(
            time.perf_counter() - started
        )
        for tp, meta in batch.offsets.items():
            self._committed[tp] = meta.offset
        self._failed_runs = 0
        self.progress.committed(id(batch))
        self._metrics.consumed.labels(self.group).inc(batch.size)
        self.processed += batch.size
        self._update_lag(consumer)

    async def _dead_letter(
        self,
        records: Sequence[tuple[TopicPartition, ConsumerRecord]],
        rejected: Sequence[Rejected],
        *,
        step: str = "collector.decode",
    ) -> list[Event]:
        s = self.settings
        events: list[Event] = []
        futures = []
        for rej in rejected:
            tp, msg = records[rej.index]
            headers = dead_letter_headers(
                msg.headers,
                topic=tp.topic,
                partition=tp.partition,
                offset=msg.offset,
                reason=rej.reason,
                message=rej.message,
            )
            try:
                futures.append(
                    await self._producer.send(
                        s.dead_letter_topic, msg.value, key=msg.key, headers=headers
                    )
                )
            except KafkaError as exc:
                raise BusError(f"dead-letter topic unavailable: {exc}") from exc
            events.append(
                rejection_event(
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=msg.offset,
                    key=msg.key,
                    headers=msg.headers,
                    reason=rej.reason,
                    message=rej.message,
                    dead_letter_topic=s.dead_letter_topic,
                    size=len(msg.value or b""),
                    step=step,
                )
            )
            self._metrics.dead_letters.labels(self.group, str(rej.reason)).inc()
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BusError(f"dead-letter topic did not acknowledge: {exc}") from exc
        return events

    def _check_member(self, consumer: AIOKafkaConsumer, before: tuple[object, object]) -> None:
        # The broker forgot this member (it restarted, or the session expired): the
        # positions this consumer holds may point into logs that no longer exist.
        # Start a fresh consumer from the group's committed offsets instead, and
        # drop what was just fetched (it is not committed, so nothing is lost).
        now = _membership(consumer)
        member = now[1]
        if not member:
            return
        if self._member is None:
            self._member = member
        elif member != self._member or (before[1] and before[1] != member):
            raise _LogReset("this consumer's group membership was lost")

    def _check_log_continuity(self, consumer: AIOKafkaConsumer) -> None:
        # A broker that came back without its storage starts every log at zero
        # again, while this consumer still holds positions in the old logs: fetching
        # from there would skip what is new. A shrinking log, or no partitions for a
        # long time, means start over from the group's committed offsets.
        now = time.monotonic()
        assignment = consumer.assignment()
        if assignment:
            self._unassigned_since = None
        elif self._unassigned_since is None:
            self._unassigned_since = now
        elif now - self._unassigned_since > _UNASSIGNED_RESTART_S:
            self._unassigned_since = None
            raise _LogReset("no partitions assigned for a while")
        for tp in assignment:
            high = consumer.highwater(tp)
            pos = _position(consumer, tp)
            if high is None:
                continue
            if high < self._highwater.get(tp, 0) or (pos is not None and pos > high):
                self._highwater.clear()
                raise _LogReset(f"log of {tp.topic}/{tp.partition} shrank to {high}")
            self._highwater[tp] = high

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        # Lag is what the group has not committed: from this member's last commit
        # of the partition, or its fetch position before it committed any.
        total = 0
        known = False
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            committed = self._committed.get(tp)
            if committed is None or committed > high:
                committed = _position(consumer, tp)
            if committed is None:
                continue
            known = True
            lag = max(0, high - committed)
            total += lag
            self._metrics.lag.labels(self.group, tp.topic, str(tp.partition)).set(lag)
        if known:
            self.progress.lag(total)


async def _rewind(consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
    """Move the fetch position of ``partitions`` still assigned back to their committed offset."""
    assigned = consumer.assignment()
    for tp in partitions:
        if tp not in assigned:
            continue  # its new owner starts from the committed offset anyway
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)  # as auto_offset_reset="earliest"
        else:
            consumer.seek(tp, committed)


def _membership(consumer: AIOKafkaConsumer) -> tuple[object, object]:
    coordinator = getattr(consumer, "_coordinator", None)
    return (getattr(coordinator, "generation", None), getattr(coordinator, "member_id", None))


def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    # The fetch position without a broker round trip (``position()`` may wait).
    try:
        state = consumer._subscription.subscription.assignment.state_value(tp)
    except AttributeError:
        return None
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


async def _close(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    # Closing a half-started consumer may fail in many ways; the loop goes on.
    except Exception:
        log.debug("consumer stop failed", exc_info=True)
