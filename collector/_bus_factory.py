"""The one bus factory: the bus the ``[bus]`` settings select.

Kafka when ``bus.kind`` is ``kafka`` or a bootstrap is set, else the embedded bus
(durable through its journal when one is given). The Kafka transport is imported
only when chosen, so the embedded default never loads aiokafka.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tracing import ConfigError

from ._bus import Bus, EmbeddedBus
from ._config import BusSettings
from ._kafka_settings import KafkaSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["make_bus"]


def make_bus(
    bus: BusSettings,
    *,
    journal: Path | None = None,
    registry: CollectorRegistry | None = None,
    client_id: str = "interlock",
) -> Bus:
    """The bus ``bus`` selects; ``registry`` receives the Kafka consumer's metrics (lag,
    oldest age, failed writes, restarts)."""
    if bus.kind == "kafka" or bus.kafka_bootstrap:
        if not bus.kafka_bootstrap:
            raise ConfigError("bus.kafka_bootstrap", "required when bus.kind is kafka")
        from ._kafka import KafkaBus
        from ._kafka_metrics import KafkaMetrics

        return KafkaBus(
            KafkaSettings(
                bootstrap=bus.kafka_bootstrap,
                events_topic=bus.events_topic,
                dead_letter_topic=bus.dead_letter_topic,
                partitions=bus.partitions,
                stall_after=bus.stall_after,
                client_id=client_id,
            ),
            metrics=KafkaMetrics(registry) if registry is not None else None,
        )
    return EmbeddedBus(partitions=bus.partitions, journal=journal)
