"""The Kafka bus: the :class:`~collector.Bus` interface over aiokafka.

``publish`` returns only once the broker has acknowledged the event (acks=all),
so an adapter may then acknowledge its source. While the broker is away,
publishes wait in a bounded buffer; past the bound, or after ``ack_timeout``,
they fail with :class:`BusBackpressure` (a retriable :class:`BusError`): a
webhook answers 503 with ``Retry-After`` instead of accepting what it cannot
keep. Spans follow the OpenTelemetry messaging conventions; a subscriber's
``process`` span continues the producer's trace.

>>> bus = KafkaBus(KafkaSettings(bootstrap="127.0.0.1:9092"))  # doctest: +SKIP
>>> await bus.start(); await bus.publish(event)                  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tracing import (
    BusError,
    Event,
    check_envelope_bounds,
    context_from_headers,
    context_from_traceparent,
    inject_headers,
    tracer,
)

from ._bus import Handler
from ._columns import EnvelopeColumns
from ._kafka_codec import H_KIND, Headers, encode_event, header
from ._kafka_consumer import Assigned, ConsumerLoop, Delivery
from ._kafka_metrics import KafkaMetrics
from ._kafka_settings import KafkaSettings
from ._kafka_store import WriteRetry

__all__ = ["BatchHandler", "BusBackpressure", "KafkaBus", "KafkaSettings"]

log = logging.getLogger(__name__)

_TOPIC_EXISTS = 36
_MAX_LINKS = 128

#: Takes a batch of events in partition order; returns once they are durable.
BatchHandler = Callable[[Sequence[Event]], Awaitable[None]]


class BusBackpressure(BusError):
    """The bus cannot take the event now; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, system="kafka")
        self.retry_after = retry_after


def messaging_attributes(settings: KafkaSettings, operation: str) -> dict[str, str | int]:
    """The attributes every Kafka span of ours carries."""
    host, _, port = settings.servers[0].rpartition(":")
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": settings.events_topic,
        "messaging.operation.type": operation,
        "server.address": host,
        "server.port": int(port),
    }


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the events and dead-letter topics when missing."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=int(settings.ack_timeout * 1000),
    )
    try:
        await admin.start()
        response = await admin.create_topics(
            [
                NewTopic(t, settings.partitions, settings.replication_factor)
                for t in (settings.events_topic, settings.dead_letter_topic)
            ]
        )
    except KafkaError as exc:
        raise BusError(f"cannot create Kafka topics: {exc}", system="kafka") from exc
    finally:
        await admin.close()
    for topic, code, message in response.topic_errors:
        if code not in (0, _TOPIC_EXISTS):
            raise BusError(f"cannot create topic {topic}: {code} {message}", system="kafka")


class KafkaBus:
    """The :class:`~collector.Bus` on Kafka. ``start``/``stop`` are safe twice."""

    def __init__(self, settings: KafkaSettings, *, metrics: KafkaMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or KafkaMetrics()
        self._producer: AIOKafkaProducer | None = None
        self._subscriptions: list[tuple[str, Handler, frozenset[str] | None]] = []
        self._loops: list[ConsumerLoop] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._running = False
        self._topics_checked_at = 0.0
        self._topics_lock = asyncio.Lock()
        self._attrs = messaging_attributes(settings, "send")
        self.handled = 0
        self.handler_errors = 0

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise BusError("the bus is not running", system="kafka")
        return self._producer

    async def start(self) -> None:
        """Create missing topics, start the producer and every subscription."""
        if self._running:
            return
        await ensure_topics(self.settings)
        self._topics_checked_at = time.monotonic()
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.servers,
            client_id=s.client_id,
            acks="all",
            linger_ms=s.linger_ms,
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=int(s.ack_timeout * 1000),
            retry_backoff_ms=100,
            metadata_max_age_ms=2_000,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise BusError(f"cannot reach Kafka at {s.bootstrap}: {exc}", system="kafka") from exc
        self._producer = producer
        self._running = True
        for group, handler, kinds in self._subscriptions:
            self._start_loop(group, handler, kinds)

    async def stop(self) -> None:
        """Stop consuming, then flush and stop the producer. Safe to call twice."""
        if not self._running:
            return
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._loops.clear()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def subscribe(
        self, group: str, handler: Handler, *, kinds: frozenset[str] | None = None
    ) -> None:
        """Run a consumer group ``group`` calling ``handler`` per event, in partition order.

        ``kinds`` filters on the ``event-kind`` header before decoding. Offsets are
        committed after the handler returns for the whole fetched batch.
        """
        if any(g == group for g, _, _ in self._subscriptions):
            raise ValueError(f"group {group!r} is already subscribed")
        self._subscriptions.append((group, handler, kinds))
        if self._running:
            self._start_loop(group, handler, kinds)

    def subscribe_batch(
        self, group: str, handler: BatchHandler, *, max_batch: int | None = None
    ) -> ConsumerLoop:
        """Run consumer group ``group`` handing whole batches to ``handler``.

        Offsets are committed only after ``handler`` returns, so a handler that
        returns once the batch is committed (the collector's lineage write) makes
        Kafka offsets trail the store: a crash means redelivery, never loss. The
        lineage records of dead-lettered messages come at the end of the batch.
        """
        if self._producer is None:
            raise BusError("start the bus before subscribing a batch handler", system="kafka")

        attrs: dict[str, str | int] = {
            **messaging_attributes(self.settings, "process"),
            "messaging.consumer.group.name": group,
        }
        name = f"process {self.settings.events_topic}"

        async def process(deliveries: Sequence[Delivery], rejected: Sequence[Event]) -> None:
            # One span per batch, linked to the producers' spans (the messaging
            # conventions for batch processing); a batch of one continues its trace.
            links = _links(deliveries[:_MAX_LINKS])
            ctx = None
            if len(deliveries) == 1:
                ctx = context_from_headers(deliveries[0].headers)
            with tracer().start_as_current_span(
                name,
                context=ctx,
                kind=SpanKind.CONSUMER,
                links=links,
                attributes={
                    **attrs,
                    "messaging.batch.message_count": len(deliveries) + len(rejected),
                },
            ):
                await handler([d.event for d in deliveries] + list(rejected))

        loop = ConsumerLoop(
            self.settings,
            group,
            process,
            producer=self._producer,
            metrics=self.metrics,
            max_batch=max_batch,
        )
        self.run_loop(loop)
        return loop

    def subscribe_columns(
        self,
        group: str,
        handler: Callable[[EnvelopeColumns], Awaitable[None]],
        *,
        max_batch: int | None = None,
        on_assigned: Assigned | None = None,
        write_retry: WriteRetry | None = None,
    ) -> ConsumerLoop:
        """``subscribe_batch`` for the collector's fast path: whole batches as columns.

        Each fetched batch is decoded straight into lineage columns (the payload
        stays the JSON text it came as; no ``Event`` objects), with the records
        of dead-lettered messages added at the end. Offsets are committed only
        after ``handler`` returns. ``on_assigned`` runs when partitions are
        assigned, before anything is fetched from them. A ``handler`` that fails
        is retried and its batch split as ``write_retry`` says
        (``collector._kafka_store``); rows that fail alone are dead-lettered.
        """
        if self._producer is None:
            raise BusError("start the bus before subscribing a batch handler", system="kafka")

        attrs: dict[str, str | int] = {
            **messaging_attributes(self.settings, "process"),
            "messaging.consumer.group.name": group,
        }
        name = f"process {self.settings.events_topic}"

        async def process(
            columns: EnvelopeColumns, rejected: Sequence[Event], headers: Sequence[Headers]
        ) -> None:
            links = _header_links(headers[:_MAX_LINKS])
            ctx = None
            if len(headers) == 1:
                ctx = context_from_headers(headers[0])
            with tracer().start_as_current_span(
                name,
                context=ctx,
                kind=SpanKind.CONSUMER,
                links=links,
                attributes={
                    **attrs,
                    "messaging.batch.message_count": len(columns) + len(rejected),
                },
            ):
                columns.extend_events(rejected)
                await handler(columns)

        loop = ConsumerLoop(
            self.settings,
            group,
            _unused_process,
            producer=self._producer,
            metrics=self.metrics,
            max_batch=max_batch,
            process_columns=process,
            on_assigned=on_assigned,
            write_retry=write_retry,
        )
        self.run_loop(loop)
        return loop

    def run_loop(self, loop: ConsumerLoop) -> None:
        """Own and run a consumer loop built on this bus's producer (the collector's)."""
        self._loops.append(loop)
        task = asyncio.create_task(loop.run(), name=f"kafka:{loop.group}")
        task.add_done_callback(_report_death)
        self._tasks.append(task)

    def _start_loop(self, group: str, handler: Handler, kinds: frozenset[str] | None) -> None:
        attrs: dict[str, str | int] = {
            **messaging_attributes(self.settings, "process"),
            "messaging.consumer.group.name": group,
        }
        name = f"process {self.settings.events_topic}"

        async def process(deliveries: Sequence[Delivery], _rejected: Sequence[Event]) -> None:
            for d in deliveries:
                if kinds is not None and header(d.headers, H_KIND) not in kinds:
                    continue
                ctx = context_from_headers(d.headers)
                span_attrs = {
                    **attrs,
                    "messaging.destination.partition.id": str(d.partition),
                    "messaging.kafka.offset": d.offset,
                    "messaging.kafka.message.key": d.event.correlation_id,
                    "messaging.message.id": d.event.event_id,
                }
                with tracer().start_as_current_span(
                    name, context=ctx, kind=SpanKind.CONSUMER, attributes=span_attrs
                ) as span:
                    try:
                        await handler(d.event)
                        self.handled += 1
                    except asyncio.CancelledError:
                        raise
                    # Same contract as the embedded bus: a handler bug must not
                    # stop the partition; flows dead-letter their own failures.
                    except Exception as exc:
                        self.handler_errors += 1
                        span.record_exception(exc)
                        span.set_status(trace.Status(trace.StatusCode.ERROR))
                        log.exception(
                            "handler of group %s failed on event %s", group, d.event.event_id
                        )

        loop = ConsumerLoop(
            self.settings, group, process, producer=self.producer, metrics=self.metrics
        )
        self.run_loop(loop)

    async def publish(self, event: Event) -> None:
        """Return once the broker acknowledged ``event``; push back when it cannot.

        An envelope out of the lineage's bounds is refused (``EnvelopeBoundsError``).
        """
        check_envelope_bounds(event)
        producer = self.producer
        if self._in_flight >= self.settings.max_buffered:
            self.metrics.published.labels("pushed_back").inc()
            raise BusBackpressure(
                f"{self._in_flight} events already wait for Kafka; try again later"
            )
        topic = self.settings.events_topic
        self._in_flight += 1
        self.metrics.buffered.set(self._in_flight)
        attrs = {**self._attrs, "messaging.kafka.message.key": event.correlation_id}
        # The producer span continues the event's own trace (its flags and
        # tracestate too), so the headers say what the envelope says.
        parent = context_from_traceparent(event.traceparent, event.tracestate)
        try:
            with tracer().start_as_current_span(
                f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attrs
            ) as span:
                key, value, headers = encode_event(event, inject_headers({}))
                try:
                    ack = await asyncio.wait_for(
                        self._send(producer, topic, key, value, headers),
                        timeout=self.settings.ack_timeout,
                    )
                except (KafkaError, TimeoutError) as exc:
                    self.metrics.published.labels("failed").inc()
                    await self._recheck_topics()
                    raise BusBackpressure(
                        f"Kafka did not acknowledge the event: {type(exc).__name__}"
                    ) from exc
                span.set_attribute("messaging.destination.partition.id", str(ack.partition))
                span.set_attribute("messaging.kafka.offset", ack.offset)
        finally:
            self._in_flight -= 1
            self.metrics.buffered.set(self._in_flight)
        self.metrics.published.labels("acked").inc()

    @staticmethod
    async def _send(
        producer: AIOKafkaProducer,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        future = await producer.send(topic, value, key=key, headers=headers)
        return await future

    async def publish_many(self, events: Sequence[Event]) -> None:
        """Publish several events concurrently; returns once all are acknowledged."""
        results = await asyncio.gather(*(self.publish(e) for e in events), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _recheck_topics(self) -> None:
        # A broker that restarted without storage has lost the topics: recreate
        # them (at most once a second) so the next retry can succeed.
        async with self._topics_lock:
            if time.monotonic() - self._topics_checked_at < 1.0:
                return
            self._topics_checked_at = time.monotonic()
            try:
                await ensure_topics(self.settings)
            except BusError as exc:
                log.info("topics not checked: %s", exc)


def _links(deliveries: Sequence[Delivery]) -> list[trace.Link]:
    return _header_links([d.headers for d in deliveries])


def _header_links(headers: Sequence[Headers]) -> list[trace.Link]:
    links = []
    for hdrs in headers:
        ctx = context_from_headers(hdrs)
        if ctx is not None:
            links.append(trace.Link(trace.get_current_span(ctx).get_span_context()))
    return links


async def _unused_process(_deliveries: Sequence[Delivery], _rejected: Sequence[Event]) -> None:
    # A columns loop never hands out deliveries.
    raise AssertionError("a columns consumer loop got deliveries")


def _report_death(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("Kafka consumer task %s died", task.get_name(), exc_info=exc)
