"""The ingest pipeline: events from the bus, in batches, into the lineage store.

Events are buffered and written when ``batch_size`` are waiting or every
``flush_interval`` seconds, whichever comes first. Nothing that arrives is
dropped (``collector._invalid``): a raw message that does not decode or
validate, an envelope that breaks the envelope's bounds, and a row the store
cannot convert or insert each become an ``event.invalid`` event, dead-lettered
with reason ``validation``, carrying what arrived (truncated, masked).

The flush task is supervised: any error of a flush is counted
(``interlock_ingest_flush_errors_total{reason}``), logged and reported by
:meth:`Collector.health` (the ``ingest`` check of ``/healthz``); the batch stays
buffered and is tried again after an exponential backoff, and the task goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import pydantic

from tracing import BusError, Event, InterlockError, envelope_bounds_error

from ._bus import Bus
from ._columns import EnvelopeColumns
from ._invalid import INVALID_KIND, invalid_event, row_dead_letter
from ._lineage import AsyncLineage, BatchOutcome, WriteResult
from ._metrics import Metrics

T = TypeVar("T")

__all__ = ["INVALID_KIND", "Collector", "invalid_event"]

log = logging.getLogger(__name__)
#: The longest wait between two tries of a failing flush.
MAX_BACKOFF = 30.0


class Collector:
    """Subscribes to the bus as group ``collector`` and writes batches to the lineage.

    >>> collector = Collector(lineage, metrics)            # doctest: +SKIP
    >>> collector.attach(bus); await collector.start()      # doctest: +SKIP
    """

    def __init__(
        self,
        lineage: AsyncLineage,
        metrics: Metrics,
        *,
        batch_size: int = 1000,
        flush_interval: float = 0.2,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_backoff <= 0:
            raise ValueError("max_backoff must be positive")
        self.lineage = lineage
        self.metrics = metrics
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        # A flush interval longer than the cap is the cap itself.
        self.max_backoff = max(max_backoff, flush_interval)
        self._buffer: list[Event] = []
        #: Dead-letter event ID -> the refused event's ID, which the journal holds.
        self._stands_for: dict[str, str] = {}
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._stopped = False
        self._bus: Bus | None = None
        # The consumer loop of a bus that hands out batches (Kafka), for health.
        self._loop: Any = None
        #: Flushes failed in a row (0 after a success) and the last failure.
        self.failures_in_row = 0
        self.last_error: str | None = None

    def attach(self, bus: Bus) -> None:
        """Subscribe to every event on ``bus`` as group ``collector``.

        A bus that hands out whole batches (Kafka) gets a handler that returns
        only once the batch is committed to DuckDB, so its offsets trail the
        lineage; one that decodes batches straight into columns
        (``subscribe_columns``) gets ``write_columns_now``, which never builds an
        ``Event`` per message. A bus with a journal (the embedded one) is told
        after every commit which events the lineage now holds, so it can drop them.
        """
        self._bus = bus
        journal = getattr(bus, "journal", None)
        if journal is not None:
            self.metrics.set_quarantine_source(lambda: journal.quarantined_total)
        subscribe_columns = getattr(bus, "subscribe_columns", None)
        subscribe_batch = getattr(bus, "subscribe_batch", None)
        if subscribe_columns is not None:
            self._loop = loop = subscribe_columns("collector", self.write_columns_now)
            # Batches no larger than the lineage's memory limit allows.
            fits = self.lineage.store.memory.max_rows()
            if fits is not None:
                loop.bound_batches(fits)
        elif subscribe_batch is not None:
            self._loop = subscribe_batch("collector", self.write_now)
        else:
            bus.subscribe("collector", self.ingest)

    def bus_health(self) -> str:
        """``"ok"``, or why the bus's consumer is stalled (Kafka; see ``ConsumerLoop``)."""
        health = getattr(self._loop, "health", None)
        return str(health()) if health is not None else "ok"

    def _refuse_if_dead(self) -> None:
        if self._failure is not None:
            raise BusError(f"the collector's flush task died: {self._failure!r}")

    def _admit(self, event: Event) -> Event:
        """``event``, or its dead letter when it breaks the envelope's bounds (an
        event that did not come through a bounds-checking ``publish``, e.g. an old
        journal record)."""
        problem = envelope_bounds_error(event)
        if problem is None:
            return event
        dead = row_dead_letter(event, problem)
        self._stands_for[dead.event_id] = event.event_id
        self.metrics.invalid_events.labels("bounds").inc()
        log.warning("event %s dead-lettered as %s: %s", event.event_id[:64], dead.event_id, problem)
        return dead

    async def write_now(self, events: Sequence[Event]) -> None:
        """Write ``events`` (and anything buffered) and return once committed."""
        self._refuse_if_dead()
        self._buffer.extend(self._admit(e) for e in events)
        await self.flush()

    async def write_columns_now(self, columns: EnvelopeColumns) -> None:
        """Write a batch already decoded into columns; return once it is committed.

        Anything buffered through ``ingest`` is written first, so the lineage
        sees events in the order the collector got them.
        """
        self._refuse_if_dead()
        if self._buffer:
            await self.flush()
        if not len(columns):
            return
        async with self._flush_lock:
            started = time.perf_counter()
            try:
                outcome, cancelled = await _to_the_end(self.lineage.write_columns(columns))
            except Exception as exc:
                # Counted and reported like a flush; the caller (the consumer) retries.
                self._flush_failed(exc)
                raise
            self._flush_succeeded(outcome)
            self.metrics.record_columns(
                columns,
                inserted_ids=outcome.inserted_ids,
                duplicates=outcome.result.duplicates,
                commit_seconds=time.perf_counter() - started,
                dead_letters_open=outcome.dead_letters_open,
            )
            if cancelled:
                raise asyncio.CancelledError

    @property
    def pending(self) -> int:
        """Events buffered and not yet written."""
        return len(self._buffer)

    async def ingest(self, event: Event) -> None:
        """Buffer ``event``; write the buffer when it is full."""
        self._refuse_if_dead()
        self._buffer.append(self._admit(event))
        if len(self._buffer) >= self.batch_size:
            await self.flush()

    async def ingest_raw(self, data: bytes) -> None:
        """Decode and validate a raw message; a bad one is stored as a dead letter."""
        try:
            event = Event.from_json(data)
        except (pydantic.ValidationError, ValueError, UnicodeDecodeError) as exc:
            event, reason = invalid_event(data, exc)
            self.metrics.invalid_events.labels(reason).inc()
            log.warning("invalid raw message dead-lettered as %s (%s)", event.event_id, reason)
        await self.ingest(event)

    async def flush(self) -> WriteResult:
        """Write everything buffered as one batch (in ``batch_size`` slices).

        A failure is counted and reported (``health``) before it is raised; the
        batch stays buffered for the next try.
        """
        async with self._flush_lock:
            total = WriteResult(0, 0, 0, 0)
            while self._buffer:
                batch = self._buffer[: self.batch_size]
                del self._buffer[: self.batch_size]
                started = time.perf_counter()
                try:
                    outcome, cancelled = await _to_the_end(self.lineage.write_batch_detailed(batch))
                except BaseException as exc:
                    # Nothing is lost: the batch goes back in front for the next try.
                    self._buffer[:0] = batch
                    if isinstance(exc, Exception):
                        self._flush_failed(exc)
                    raise
                self._flush_succeeded(outcome)
                self.metrics.record_batch(
                    batch,
                    inserted_ids=outcome.inserted_ids,
                    duplicates=outcome.result.duplicates,
                    delivered=len(batch),
                    commit_seconds=time.perf_counter() - started,
                    dead_letters_open=outcome.dead_letters_open,
                )
                ids = [event.event_id for event in batch]
                ids += [self._stands_for.pop(i) for i in ids if i in self._stands_for]
                confirm = getattr(self._bus, "confirm", None)
                if confirm is not None:
                    confirm(ids)
                if cancelled:
                    # Counted once; now let the cancellation through.
                    raise asyncio.CancelledError
                r = outcome.result
                total = WriteResult(
                    total.inserted + r.inserted,
                    total.duplicates + r.duplicates,
                    total.dead_letters_opened + r.dead_letters_opened,
                    total.dead_letters_resolved + r.dead_letters_resolved,
                )
            return total

    def _flush_failed(self, exc: Exception) -> None:
        self.failures_in_row += 1
        reason = type(exc).__name__
        detail = exc.message if isinstance(exc, InterlockError) else str(exc)
        self.last_error = f"{reason}: {detail[:300]}"
        self.metrics.flush_errors.labels(reason).inc()

    def _flush_succeeded(self, outcome: BatchOutcome) -> None:
        self.failures_in_row = 0
        self.last_error = None
        if outcome.refused_ids:
            self.metrics.invalid_events.labels("store").inc(len(outcome.refused_ids))
            log.warning(
                "the lineage could not take %d event(s) of a batch; dead-lettered: %s",
                len(outcome.refused_ids),
                ", ".join(i[:64] for i in outcome.refused_ids[:10]),
            )

    def health(self) -> str:
        """``"ok"``, or ``"error: <why>"`` while flushes fail or after the task died."""
        if self._failure is not None:
            return f"error: the flush task died: {type(self._failure).__name__}"
        if self.last_error is not None:
            return (
                f"error: {self.failures_in_row} flush(es) failed in a row, retrying: "
                f"{self.last_error}"
            )
        return "ok"

    def backoff(self) -> float:
        """The wait before the next flush: doubled per failure in a row, capped."""
        if self.failures_in_row == 0:
            return self.flush_interval
        return min(self.max_backoff, self.flush_interval * 2.0 ** min(self.failures_in_row, 32))

    async def start(self) -> None:
        """Start the periodic flush task (idempotent)."""
        if self._task is not None:
            return
        self._stopped = False
        self._task = asyncio.create_task(self._flush_loop(), name="collector:flush")
        self._task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # Only a BaseException that is not an Exception gets here (the loop
            # catches the rest): ingest refuses further events rather than
            # buffering without a writer.
            self._failure = exc
            log.error("collector flush task died: %r", exc)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.backoff())
            if not self._buffer:
                continue
            try:
                await self.flush()
            # Supervision: whatever a flush raises (a store outage, a defect) must not
            # end ingest. ``flush`` counted it and kept the batch; log and back off.
            except Exception:
                log.exception(
                    "lineage flush failed (%d in a row); next try in %.1fs",
                    self.failures_in_row,
                    self.backoff(),
                )

    async def stop(self) -> None:
        """Stop the flush task and write what is buffered; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # A task that already died reported through its done-callback.
            await asyncio.gather(task, return_exceptions=True)
        await self.flush()


async def _to_the_end(write: Awaitable[T]) -> tuple[T, bool]:
    """Await a lineage write to its end even if the caller is cancelled meanwhile.

    The write runs on in the lineage's writer thread whatever its awaiter does;
    giving up on it would put back a batch that is then written, and counted as
    duplicates, a second time. Returns the outcome and whether a cancellation
    arrived, for the caller to re-raise once it has counted the write. A write
    that fails raises as usual.
    """
    task = asyncio.ensure_future(write)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
