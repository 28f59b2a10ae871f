"""KafkaBus against a real Tansu broker: keys, headers, spans, ordering, push-back."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer
from conftest import kafka_settings, make_event
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.sandbox.kafka import TansuBroker
from collector import EmbeddedBus, make_bus
from collector._config import BusSettings
from collector.kafka import BusBackpressure, KafkaBus, KafkaSettings
from tracing import (
    SCHEMA_VERSION,
    BusError,
    ConfigError,
    Event,
    setup_tracing,
    start_step_span,
)

_exporter = InMemorySpanExporter()
_installed: list[bool] = []


@pytest.fixture
def spans() -> InMemorySpanExporter:
    # The provider is process-wide; add our exporter to it once.
    if not _installed:
        setup_tracing("test", exporter=_exporter)
        _installed.append(True)
    _exporter.clear()
    return _exporter


async def _read_all(settings: KafkaSettings, topic: str, n: int) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + 15
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            out += [m for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return out


async def test_message_key_and_headers_let_a_consumer_route_without_decoding(settings, spans):
    bus = KafkaBus(settings)
    await bus.start()
    await bus.start()  # safe twice
    with start_step_span("crm.closed_won"):
        event = make_event(1)
        await bus.publish(event)
    await bus.stop()
    await bus.stop()

    (msg,) = await _read_all(settings, settings.events_topic, 1)
    headers = {k: v.decode() for k, v in msg.headers}
    assert msg.key == event.correlation_id.encode()
    assert headers["correlation-id"] == event.correlation_id
    assert headers["idempotency-key"] == event.idempotency_key
    assert headers["event-kind"] == "order.created"
    assert headers["event-id"] == event.event_id
    assert headers["schema-version"] == str(SCHEMA_VERSION)
    send = next(s for s in spans.get_finished_spans() if s.name == "send t.events")
    assert send.kind is SpanKind.PRODUCER
    assert headers["traceparent"].startswith(
        f"00-{send.context.trace_id:032x}-{send.context.span_id:016x}-"
    )
    assert send.attributes["messaging.system"] == "kafka"
    assert send.attributes["messaging.destination.name"] == "t.events"
    assert send.attributes["messaging.kafka.message.key"] == event.correlation_id
    assert send.attributes["messaging.kafka.offset"] == msg.offset
    assert Event.from_json(msg.value) == event


@pytest.mark.parametrize("flags", [0x00, 0x01])
async def test_kafka_headers_carry_the_events_trace_flags_and_tracestate(settings, spans, flags):
    """The producer span continues the event's trace; a consumer reads both headers."""
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    event = make_event(1).model_copy(
        update={
            "trace_id": trace_id,
            "span_id": span_id,
            "trace_flags": flags,
            "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        }
    )
    seen: list[tuple[str, str]] = []

    async def handler(_: Event) -> None:
        ctx = trace.get_current_span().get_span_context()
        seen.append(
            (f"{ctx.trace_id:032x}-{int(ctx.trace_flags):02x}", ctx.trace_state.to_header())
        )

    bus = KafkaBus(settings)
    bus.subscribe("flows", handler)
    await bus.start()
    await bus.publish(event)
    deadline = time.monotonic() + 15
    while not seen and time.monotonic() < deadline:  # noqa: ASYNC110  # polling a list
        await asyncio.sleep(0.05)
    await bus.stop()

    (msg,) = await _read_all(settings, settings.events_topic, 1)
    headers = {k: v.decode() for k, v in msg.headers}
    assert headers["traceparent"].startswith(f"00-{trace_id}-")
    assert headers["traceparent"].endswith(f"-{flags:02x}")
    assert headers["traceparent"][36:52] != span_id  # the producer span's own id
    assert headers["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert seen == [(f"{trace_id}-{flags:02x}", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")]


async def test_subscriber_gets_each_transaction_in_order_and_continues_the_trace(settings, spans):
    received: list[Event] = []

    async def handler(event: Event) -> None:
        received.append(event)

    bus = KafkaBus(settings)
    bus.subscribe("flows", handler, kinds=frozenset({"order.created"}))
    await bus.start()
    events = [make_event(i, correlations=7) for i in range(300)]
    await bus.publish_many(events)
    other = make_event(999).model_copy(update={"kind": "invoice.posted", "event_id": "x-999"})
    await bus.publish(other)
    deadline = time.monotonic() + 20
    while len(received) < 300 and time.monotonic() < deadline:  # noqa: ASYNC110  # polling a list
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await bus.stop()

    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in events)
    for corr in {e.correlation_id for e in events}:
        sent = [e.event_id for e in events if e.correlation_id == corr]
        got = [e.event_id for e in received if e.correlation_id == corr]
        assert got == sent, "one transaction must stay in order"
    finished = spans.get_finished_spans()
    sends = {s.context.span_id: s for s in finished if s.name == "send t.events"}
    process = [s for s in finished if s.name == "process t.events"]
    assert len(process) == 300
    for span in process:
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes["messaging.consumer.group.name"] == "flows"
        assert span.parent is not None and span.parent.span_id in sends
        assert span.context.trace_id == sends[span.parent.span_id].context.trace_id


async def test_publish_pushes_back_when_the_broker_is_gone(broker: TansuBroker):
    settings = kafka_settings(broker, ack_timeout=1.0, max_buffered=3)
    bus = KafkaBus(settings)
    await bus.start()
    await bus.publish(make_event(0))
    broker.stop()
    started = time.monotonic()
    results = await asyncio.gather(
        *(bus.publish(make_event(i)) for i in range(1, 6)), return_exceptions=True
    )
    assert time.monotonic() - started < 5
    assert all(isinstance(r, BusBackpressure) for r in results)
    assert all(r.retriable and r.retry_after > 0 for r in results)  # type: ignore[union-attr]
    samples = bus.metrics.registry
    assert samples.get_sample_value("interlock_kafka_published_total", {"outcome": "acked"}) == 1
    assert (
        samples.get_sample_value("interlock_kafka_published_total", {"outcome": "pushed_back"}) == 2
    )  # over the bound of 3 waiting publishes: refused at once
    assert samples.get_sample_value("interlock_kafka_published_total", {"outcome": "failed"}) == 3
    await bus.stop()


async def test_start_fails_with_a_bus_error_when_kafka_is_unreachable():
    from collector.process import free_port

    bus = KafkaBus(KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", ack_timeout=1.0))
    with pytest.raises(BusError):
        await bus.start()
    with pytest.raises(BusError):
        await bus.publish(make_event(1))


def test_settings_name_the_bad_setting():
    with pytest.raises(ConfigError, match=r"bus\.kafka_bootstrap"):
        KafkaSettings(bootstrap="no-port")
    with pytest.raises(ConfigError, match=r"bus\.events_topic"):
        KafkaSettings(bootstrap="h:1", events_topic="bad topic")
    with pytest.raises(ConfigError, match=r"bus\.dead_letter_topic"):
        KafkaSettings(bootstrap="h:1", events_topic="a", dead_letter_topic="a")
    with pytest.raises(ConfigError, match=r"bus\.partitions"):
        KafkaSettings(bootstrap="h:1", partitions=0)


def test_configuration_switches_the_bus(tmp_path):
    assert isinstance(make_bus(BusSettings()), EmbeddedBus)
    kafka = make_bus(BusSettings(kafka_bootstrap="127.0.0.1:9092", partitions=3))
    assert isinstance(kafka, KafkaBus)
    assert kafka.settings.partitions == 3
    assert kafka.settings.events_topic == "interlock.events"
