"""The ingest pipeline: events from the bus, in batches, into the lineage store.

Events are buffered and written when ``batch_size`` are waiting or every
``flush_interval`` seconds, whichever comes first. A raw message that does not
decode or validate is not dropped: it becomes an ``event.invalid`` event,
dead-lettered with reason ``validation``, carrying the (truncated, masked) bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pydantic

from tracing import (
    BusError,
    ErrorInfo,
    Event,
    InterlockError,
    Reason,
    Status,
    System,
    mask_payload,
)

from ._bus import Bus
from ._lineage import AsyncLineage, WriteResult
from ._lineage_rows import EnvelopeColumns
from ._metrics import Metrics

__all__ = ["INVALID_KIND", "Collector", "invalid_event"]

log = logging.getLogger(__name__)

#: The kind of the event a bad raw message becomes.
INVALID_KIND = "event.invalid"
_RAW_LIMIT = 2048
_ERROR_LIMIT = 1000
_NAMESPACE = uuid.UUID("0b7f3f3e-5d7c-4a57-8f0e-8a9c6f1d2b44")


def _masked_raw(data: bytes) -> Any:
    """The raw message as it may be stored: parsed and masked when it is JSON,
    otherwise text with e-mail addresses masked; truncated either way."""
    text = data.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        masked = json.dumps(mask_payload(parsed), default=str)
    else:
        masked = str(mask_payload({"raw": text})["raw"])
    if len(masked) > _RAW_LIMIT:
        return masked[:_RAW_LIMIT] + f"... [{len(masked) - _RAW_LIMIT} more characters]"
    return masked


def invalid_event(data: bytes, error: Exception) -> tuple[Event, str]:
    """The ``event.invalid`` dead-letter event for a bad raw message, and a metric reason.

    Its event ID is derived from the bytes, so a redelivered bad message is stored
    once, like any other duplicate.
    """
    digest = hashlib.sha256(data).hexdigest()
    metric_reason = "schema"
    correlation_id: str | None = None
    if isinstance(error, pydantic.ValidationError):
        errors = error.errors(include_url=False)
        if any(e.get("type") == "json_invalid" for e in errors):
            metric_reason = "json"
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or '<root>'}: {e.get('msg')}"
            for e in errors
        )
    else:
        metric_reason = "decode"
        summary = str(error) or type(error).__name__
    # Keep the message's own correlation ID when it has a usable one, so the bad
    # message shows up in its transaction.
    try:
        parsed = json.loads(data)
        if isinstance(parsed, dict) and isinstance(parsed.get("correlation_id"), str):
            correlation_id = parsed["correlation_id"][:200] or None
    except ValueError:
        pass
    event = Event(
        event_id=str(uuid.uuid5(_NAMESPACE, digest)),
        correlation_id=correlation_id or f"invalid-{digest[:32]}",
        idempotency_key=f"invalid:{digest}",
        source=System.INTERLOCK,
        kind=INVALID_KIND,
        step="collector.validate",
        entity_type="raw_message",
        entity_id=digest[:16],
        status=Status.DEAD_LETTERED,
        payload={"raw": _masked_raw(data), "size": len(data), "errors": summary[:_ERROR_LIMIT]},
        error=ErrorInfo(
            reason=Reason.VALIDATION,
            message=summary[:_ERROR_LIMIT],
            retriable=False,
            error_type=type(error).__name__,
        ),
    )
    return event, metric_reason


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
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.lineage = lineage
        self.metrics = metrics
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._buffer: list[Event] = []
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._stopped = False
        self._bus: Bus | None = None
        # The consumer loop of a bus that hands out batches (Kafka), for health.
        self._loop: Any = None

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

    def health(self) -> str:
        """``"ok"``, or why the bus's consumer is stalled (Kafka; see ``ConsumerLoop``)."""
        health = getattr(self._loop, "health", None)
        return str(health()) if health is not None else "ok"

    async def write_now(self, events: Sequence[Event]) -> None:
        """Write ``events`` (and anything buffered) and return once committed."""
        if self._failure is not None:
            raise BusError(f"the collector's flush task died: {self._failure!r}")
        self._buffer.extend(events)
        await self.flush()

    async def write_columns_now(self, columns: EnvelopeColumns) -> None:
        """Write a batch already decoded into columns; return once it is committed.

        Anything buffered through ``ingest`` is written first, so the lineage
        sees events in the order the collector got them.
        """
        if self._failure is not None:
            raise BusError(f"the collector's flush task died: {self._failure!r}")
        if self._buffer:
            await self.flush()
        if not len(columns):
            return
        async with self._flush_lock:
            started = time.perf_counter()
            outcome = await self.lineage.write_columns(columns)
            self.metrics.record_columns(
                columns,
                inserted_ids=outcome.inserted_ids,
                duplicates=outcome.result.duplicates,
                commit_seconds=time.perf_counter() - started,
                dead_letters_open=outcome.dead_letters_open,
            )

    @property
    def pending(self) -> int:
        """Events buffered and not yet written."""
        return len(self._buffer)

    async def ingest(self, event: Event) -> None:
        """Buffer ``event``; write the buffer when it is full."""
        if self._failure is not None:
            raise BusError(f"the collector's flush task died: {self._failure!r}")
        self._buffer.append(event)
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
        """Write everything buffered as one batch (in ``batch_size`` slices)."""
        async with self._flush_lock:
            total = WriteResult(0, 0, 0, 0)
            while self._buffer:
                batch = self._buffer[: self.batch_size]
                del self._buffer[: self.batch_size]
                started = time.perf_counter()
                try:
                    outcome = await self.lineage.write_batch_detailed(batch)
                except BaseException:
                    # Nothing is lost: the batch goes back in front for the next try.
                    self._buffer[:0] = batch
                    raise
                self.metrics.record_batch(
                    batch,
                    inserted_ids=outcome.inserted_ids,
                    duplicates=outcome.result.duplicates,
                    delivered=len(batch),
                    commit_seconds=time.perf_counter() - started,
                    dead_letters_open=outcome.dead_letters_open,
                )
                confirm = getattr(self._bus, "confirm", None)
                if confirm is not None:
                    confirm([event.event_id for event in batch])
                r = outcome.result
                total = WriteResult(
                    total.inserted + r.inserted,
                    total.duplicates + r.duplicates,
                    total.dead_letters_opened + r.dead_letters_opened,
                    total.dead_letters_resolved + r.dead_letters_resolved,
                )
            return total

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
            # Ingest refuses further events rather than buffering without a writer.
            self._failure = exc
            log.error("collector flush task died: %r", exc)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            if not self._buffer:
                continue
            try:
                await self.flush()
            except InterlockError as exc:
                # A store error is retriable: the batch is back in the buffer and
                # the next tick tries again.
                log.warning("lineage flush failed, will retry: %s", exc)

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
