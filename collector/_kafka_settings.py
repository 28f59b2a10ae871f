"""Kafka transport settings, and the choice between the embedded bus and Kafka.

Given a bootstrap address (``INTERLOCK_KAFKA_BOOTSTRAP=host:port`` or the TOML
setting ``[bus] kafka_bootstrap``) Interlock runs on Kafka; without one it runs
on the embedded bus. Nothing is read at import time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracing import ConfigError

__all__ = ["KafkaSettings"]

_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")


@dataclass(frozen=True)
class KafkaSettings:
    """Where Kafka is and how Interlock uses it.

    ``bootstrap`` is ``host:port[,host:port…]``. Topics are created when missing,
    with ``partitions`` partitions. ``max_buffered`` bounds the publishes waiting
    for the broker's acknowledgement; beyond it ``publish`` pushes back at once.
    ``ack_timeout`` is how long one publish waits for the acknowledgement.
    ``stall_after`` is how long a consumer may go without committing a batch while
    messages wait before its health says stalled.
    """

    bootstrap: str
    events_topic: str = "interlock.events"
    dead_letter_topic: str = "interlock.dead-letters"
    partitions: int = 12
    replication_factor: int = 1
    client_id: str = "interlock"
    max_buffered: int = 10_000
    ack_timeout: float = 10.0
    linger_ms: int = 5
    #: Consumer liveness: a member silent this long loses its partitions.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    max_batch: int = 5_000
    fetch_max_bytes: int = 8 * 1024 * 1024
    stall_after: float = 300.0

    def __post_init__(self) -> None:
        for part in self.bootstrap.split(","):
            if not _HOSTPORT.match(part.strip()):
                raise ConfigError("bus.kafka_bootstrap", f"expected host:port, got {part!r}")
        for name, topic in (
            ("bus.events_topic", self.events_topic),
            ("bus.dead_letter_topic", self.dead_letter_topic),
        ):
            if not _TOPIC.match(topic):
                raise ConfigError(name, f"not a valid Kafka topic name: {topic!r}")
        if self.events_topic == self.dead_letter_topic:
            raise ConfigError("bus.dead_letter_topic", "must differ from the events topic")
        if self.partitions < 1:
            raise ConfigError("bus.partitions", "must be at least 1")
        if self.max_buffered < 1:
            raise ConfigError("bus.max_buffered", "must be at least 1")
        if self.ack_timeout <= 0:
            raise ConfigError("bus.ack_timeout", "must be positive")
        if not self.stall_after > 0:
            raise ConfigError("bus.stall_after", "must be a positive number of seconds")

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.bootstrap.split(",")]
