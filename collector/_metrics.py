"""Prometheus metrics of the collector, on a registry passed in (never the global one).

>>> m = Metrics()
>>> m.duplicates_dropped.inc(2)
>>> m.registry.get_sample_value("interlock_duplicates_dropped_total")
2.0
"""

from __future__ import annotations

from collections import Counter as Counter_
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tracing import Event

from ._columns import EnvelopeColumns

__all__ = ["Metrics"]

_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric the collector exposes on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "interlock_events",
            "Events stored in the lineage, by source system, kind and status.",
            ["system", "kind", "status"],
            registry=r,
        )
        self.step_duration = Histogram(
            "interlock_step_duration_seconds",
            "How long a step's own work took (the envelope's duration_ms).",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.dead_letters_open = Gauge(
            "interlock_dead_letters_open",
            "Dead letters not yet resolved or ignored.",
            registry=r,
        )
        self.duplicates_dropped = Counter(
            "interlock_duplicates_dropped",
            "Deliveries of events the lineage already held (dropped by event ID).",
            registry=r,
        )
        self.invalid_events = Counter(
            "interlock_invalid_events",
            "Raw messages that failed to decode or validate (stored as dead letters).",
            ["reason"],
            registry=r,
        )
        self.webhook_rejected = Counter(
            "interlock_webhook_rejected",
            "Inbound webhooks rejected before becoming events.",
            ["system", "reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "interlock_ingest_batch_size",
            "Events per lineage batch as delivered (duplicates included).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "interlock_lineage_commit_seconds",
            "Time to write and commit one lineage batch.",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self.flush_errors = Counter(
            "interlock_ingest_flush_errors",
            "Lineage flushes that failed (the batch is kept and retried), by error type.",
            ["reason"],
            registry=r,
        )
        self.journal_quarantined = Gauge(
            "interlock_journal_quarantined",
            "Journal records set aside after failing too many replays (in quarantine/).",
            registry=r,
        )
        self.bus_backlog = Gauge(
            "interlock_bus_backlog",
            "Events waiting on the bus (set from the runtime's backlog callback).",
            registry=r,
        )

    def set_backlog_source(self, source: Callable[[], float]) -> None:
        """Read the bus backlog from ``source`` at every scrape (e.g. ``bus.backlog``)."""
        self.bus_backlog.set_function(source)

    def set_quarantine_source(self, source: Callable[[], float]) -> None:
        """Read the journal's quarantined record count from ``source`` at every scrape."""
        self.journal_quarantined.set_function(source)

    def record_batch(
        self,
        events: Iterable[Event],
        *,
        inserted_ids: frozenset[str],
        duplicates: int,
        delivered: int,
        commit_seconds: float,
        dead_letters_open: int,
    ) -> None:
        """Account for one committed batch; only newly stored events are counted."""
        seen: set[str] = set()
        for event in events:
            if event.event_id not in inserted_ids or event.event_id in seen:
                continue
            seen.add(event.event_id)
            self.events.labels(event.source, event.kind, event.status.value).inc()
            if event.duration_ms is not None:
                self.step_duration.labels(event.step).observe(event.duration_ms / 1000.0)
        self._record_totals(duplicates, delivered, commit_seconds, dead_letters_open)

    def record_columns(
        self,
        columns: EnvelopeColumns,
        *,
        inserted_ids: frozenset[str],
        duplicates: int,
        commit_seconds: float,
        dead_letters_open: int,
    ) -> None:
        """``record_batch`` for a batch written as columns (the Kafka fast path).

        Counts the first row of each newly stored event ID, as the store kept it;
        events of one (system, kind, status) are added to their counter at once.
        """
        ids = columns.event_ids
        sources = columns.column("source")
        kinds = columns.column("kind")
        statuses = columns.column("status")
        steps = columns.column("step")
        durations = columns.column("duration_ms")
        counts: Counter_[tuple[str, str, str]] = Counter_()
        seen: set[str] = set()
        for i, event_id in enumerate(ids):
            if event_id not in inserted_ids or event_id in seen:
                continue
            seen.add(event_id)
            counts[(sources[i], kinds[i], statuses[i])] += 1
            duration = durations[i]
            if duration is not None:
                self.step_duration.labels(steps[i]).observe(duration / 1000.0)
        for (system, kind, status), n in counts.items():
            self.events.labels(system, kind, status).inc(n)
        self._record_totals(duplicates, len(ids), commit_seconds, dead_letters_open)

    def _record_totals(
        self, duplicates: int, delivered: int, commit_seconds: float, dead_letters_open: int
    ) -> None:
        if duplicates:
            self.duplicates_dropped.inc(duplicates)
        self.batch_size.observe(delivered)
        self.commit_seconds.observe(commit_seconds)
        self.dead_letters_open.set(dead_letters_open)

    def backlog(self) -> int:
        """The last known bus backlog (0 when no source is set)."""
        value = self.registry.get_sample_value("interlock_bus_backlog")
        return int(value) if value is not None else 0
