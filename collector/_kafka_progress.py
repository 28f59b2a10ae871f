"""What a consumer group has achieved lately: commits, waiting messages, stalls.

``ConsumerProgress`` is told by the consumer loop when a batch is fetched,
committed or given up (left for redelivery), and what the lag is; from that it
serves, at every scrape, the age of the oldest message fetched but not yet
committed, the seconds since the last committed batch and whether the group is
stalled: no batch committed for longer than ``stall_after`` while messages wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ._kafka_metrics import KafkaMetrics

__all__ = ["ConsumerProgress"]


class ConsumerProgress:
    """Progress of one consumer group in this process (see the module docstring)."""

    def __init__(
        self,
        group: str,
        metrics: KafkaMetrics,
        *,
        stall_after: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.group = group
        self.stall_after = stall_after
        self._clock = clock
        self._wall = wall
        now = clock()
        self._last_commit = now
        # The last moment the group had nothing waiting, or committed a batch.
        self._progress_at = now
        # Oldest message timestamp (ms) of each batch fetched and not settled yet.
        self._outstanding: dict[int, float] = {}
        # Oldest timestamp of batches given up for redelivery: they still wait.
        self._carried: float | None = None
        self._lag = 0
        #: Batches committed, consumers restarted (this process).
        self.commits = 0
        self.restarts = 0
        #: Why the last consumer was restarted, or the store's last failure.
        self.last_error: str | None = None
        metrics.oldest_age.labels(group).set_function(self.oldest_age)
        metrics.since_commit.labels(group).set_function(self.since_commit)
        metrics.stalled.labels(group).set_function(lambda: 1.0 if self.stalled_for() else 0.0)

    # -- told by the loop -----------------------------------------------------------

    def fetched(self, key: int, oldest_ms: float) -> None:
        self._outstanding[key] = oldest_ms

    def committed(self, key: int) -> None:
        self._outstanding.pop(key, None)
        # The first commit after a restart covers what the previous consumer left.
        self._carried = None
        self._last_commit = self._progress_at = self._clock()
        self.commits += 1

    def abandoned(self, key: int) -> None:
        """The batch was not committed (it will be fetched again)."""
        oldest = self._outstanding.pop(key, None)
        if oldest is not None:
            self._carried = oldest if self._carried is None else min(self._carried, oldest)

    def restarted(self, error: str) -> None:
        for key in list(self._outstanding):
            self.abandoned(key)
        self.restarts += 1
        self.last_error = error

    def lag(self, total: int) -> None:
        """The messages not yet committed across the assigned partitions."""
        self._lag = total
        if total == 0 and not self._outstanding:
            self._carried = None
            self._progress_at = self._clock()

    # -- read at scrape time ------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Messages wait: fetched and not committed, or behind the committed offsets."""
        return bool(self._outstanding) or self._carried is not None or self._lag > 0

    def oldest_age(self) -> float:
        """Seconds since the oldest message fetched but not committed was produced (0: none)."""
        stamps = list(self._outstanding.values())
        if self._carried is not None:
            stamps.append(self._carried)
        if not stamps:
            return 0.0
        return max(0.0, self._wall() - min(stamps) / 1000)

    def since_commit(self) -> float:
        return self._clock() - self._last_commit

    def stalled_for(self) -> float | None:
        """Seconds without progress while messages wait, once past ``stall_after``."""
        if not self.waiting:
            return None
        idle = self._clock() - self._progress_at
        return idle if idle > self.stall_after else None

    def health(self) -> str:
        """``"ok"``, or why the group is stalled (for ``/healthz``)."""
        idle = self.stalled_for()
        if idle is None:
            return "ok"
        why = f"; last error: {self.last_error}" if self.last_error else ""
        return (
            f"stalled: no batch committed for {idle:.0f} s (bound {self.stall_after:g} s) "
            f"while messages wait{why}"
        )
