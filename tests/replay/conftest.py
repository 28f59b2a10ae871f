"""Replay fixtures: a real in-memory lineage store, the embedded bus and a replay
service over them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adapters.flows import SPEC
from collector import EmbeddedBus
from collector.api import Metrics
from collector.lineage import AsyncLineage, Collector, LineageStore
from replay import ReplayService


@pytest.fixture
async def lineage() -> AsyncIterator[AsyncLineage]:
    store = LineageStore(":memory:")
    access = AsyncLineage(store)
    await access.open()
    try:
        yield access
    finally:
        await access.close()


@pytest.fixture
async def bus() -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(partitions=4)
    yield bus
    await bus.stop()


@pytest.fixture
async def collector(lineage: AsyncLineage, bus: EmbeddedBus) -> AsyncIterator[Collector]:
    """The real ingest pipeline, writing every bus event to the lineage."""
    ingest = Collector(lineage, Metrics(CollectorRegistry()), flush_interval=0.05)
    ingest.attach(bus)
    await ingest.start()
    yield ingest
    await bus.stop()
    await ingest.stop()


ServiceFactory = Callable[..., Any]


@pytest.fixture
async def make_service(
    lineage: AsyncLineage, bus: EmbeddedBus, collector: Collector
) -> AsyncIterator[ServiceFactory]:
    """Build (and start) a replay service; all are stopped at the end. Its payload
    models are quote-to-cash's, as on a host with that flow installed."""
    made: list[ReplayService] = []

    async def make(**kwargs: Any) -> ReplayService:
        kwargs.setdefault("probe", None)
        kwargs.setdefault("rate_per_second", 1000.0)
        kwargs.setdefault("outcome_timeout", 5.0)
        kwargs.setdefault("bus_group", f"replay-{len(made)}")
        kwargs.setdefault("payload_models", SPEC.payload_models)
        service = ReplayService(lineage, bus, **kwargs)
        await service.start()
        await bus.start()
        made.append(service)
        return service

    yield make
    for service in made:
        await service.stop()
