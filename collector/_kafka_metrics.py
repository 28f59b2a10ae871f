"""Prometheus metrics of the Kafka transport, on a registry passed in.

Consumer lag per partition, the age of the oldest event not yet processed,
batch sizes, commit latency (lineage commit and offset commit), dead letters by
reason, failed batch writes by kind, consumer restarts, the time since the last
committed batch and whether the consumer is stalled, and the producer's
acknowledgements, push-backs and buffer.

The process that consumes serves these on its ``/metrics``: the runtime passes
its own registry, a standalone collector serves them on ``--metrics-port``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["KafkaMetrics"]

_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class KafkaMetrics:
    """The transport's metrics; a fresh private registry when none is given."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lag = Gauge(
            "interlock_kafka_consumer_lag",
            "Messages in a partition not yet processed by the consumer group",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.oldest_age = Gauge(
            "interlock_kafka_oldest_unprocessed_age_seconds",
            "Age of the oldest message fetched but not yet processed (0 when caught up)",
            ["group"],
            registry=r,
        )
        self.batch_size = Histogram(
            "interlock_kafka_batch_size",
            "Messages per consumed batch",
            ["group"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "interlock_kafka_commit_seconds",
            "Latency of a batch commit: stage=store (lineage) or offsets (Kafka)",
            ["group", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumed = Counter(
            "interlock_kafka_consumed",
            "Messages processed and committed",
            ["group"],
            registry=r,
        )
        self.dead_letters = Counter(
            "interlock_kafka_dead_letters",
            "Messages sent to the dead-letter topic, by reason",
            ["group", "reason"],
            registry=r,
        )
        self.commit_failures = Counter(
            "interlock_kafka_offset_commit_failures",
            "Offset commits refused (rebalance); the batch is redelivered and deduplicated",
            ["group"],
            registry=r,
        )
        self.write_failures = Counter(
            "interlock_kafka_batch_write_failures",
            "Lineage writes of a consumed batch that failed, by kind: resource (retried), "
            "poison (split, the rows that fail alone dead-lettered), fatal (store reopened)",
            ["group", "kind"],
            registry=r,
        )
        self.restarts = Counter(
            "interlock_kafka_consumer_restarts",
            "Consumers started again from the committed offsets after an error, by error type",
            ["group", "error"],
            registry=r,
        )
        self.since_commit = Gauge(
            "interlock_kafka_seconds_since_last_commit",
            "Seconds since the consumer group last committed a batch (since start before that)",
            ["group"],
            registry=r,
        )
        self.stalled = Gauge(
            "interlock_kafka_consumer_stalled",
            "1 when no batch was committed for longer than the stall bound while messages wait",
            ["group"],
            registry=r,
        )
        self.write_limit = Gauge(
            "interlock_kafka_write_batch_rows",
            "Rows the consumer writes to the lineage at once (halved when writes run out "
            "of resources, grown back after successes)",
            ["group"],
            registry=r,
        )
        self.published = Counter(
            "interlock_kafka_published",
            "Publishes by outcome: acked, pushed_back, failed",
            ["outcome"],
            registry=r,
        )
        self.buffered = Gauge(
            "interlock_kafka_publish_buffered",
            "Publishes waiting for the broker's acknowledgement",
            registry=r,
        )
