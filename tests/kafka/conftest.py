"""Kafka fixtures: a real Tansu broker per test (it starts in milliseconds) and events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pytest

from adapters.sandbox.kafka import TansuBroker
from collector.kafka import BusBackpressure, KafkaBus, KafkaSettings
from tracing import Event, System


@pytest.fixture
def broker(tmp_path) -> Iterator[TansuBroker]:
    with TansuBroker(log_path=tmp_path / "tansu.log") as b:
        yield b


@pytest.fixture
def settings(broker: TansuBroker) -> KafkaSettings:
    return kafka_settings(broker)


def kafka_settings(broker: TansuBroker, **overrides: object) -> KafkaSettings:
    values: dict[str, object] = {
        "bootstrap": broker.bootstrap,
        "events_topic": "t.events",
        "dead_letter_topic": "t.dead",
        "partitions": 4,
        "client_id": "test",
        "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 500,
        "ack_timeout": 3.0,
    }
    values.update(overrides)
    return KafkaSettings(**values)  # type: ignore[arg-type]


def make_event(i: int, *, correlations: int = 50, payload_bytes: int = 200) -> Event:
    """A realistic order event; deterministic ID so runs can be compared."""
    return Event(
        event_id=str(uuid.UUID(int=i + 1)),
        correlation_id=f"corr-{i % correlations}",
        idempotency_key=f"idem-{i}",
        source=System.CRM,
        target=System.ERP,
        kind="order.created",
        step="erp.create_order",
        entity_type="sales_order",
        entity_id=f"SO-{i}",
        amount=Decimal("120.50"),
        currency="EUR",
        customer_id=f"cust-{i % 97}",
        payload={"note": "x" * payload_bytes, "lines": [{"sku": "A-1", "qty": 2}]},
    )


async def publish_all(bus: KafkaBus, events: Sequence[Event], *, within: float = 120.0) -> set[str]:
    """Publish ``events`` as a client that honours push-back does.

    What the broker did not acknowledge in time (``BusBackpressure``, e.g. while
    a loaded machine restarts a collector) is sent again after a pause; the
    lineage drops the repeats by event ID. Any other error is raised. Returns
    the IDs sent more than once.
    """
    resent: set[str] = set()
    pending = list(events)
    deadline = time.monotonic() + within
    while pending:
        results = await asyncio.gather(*(bus.publish(e) for e in pending), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, BusBackpressure):
                raise result
        pending = [e for e, r in zip(pending, results, strict=True) if r is not None]
        if pending:
            assert time.monotonic() < deadline, f"{len(pending)} events never acknowledged"
            resent.update(e.event_id for e in pending)
            await asyncio.sleep(0.5)
    return resent
