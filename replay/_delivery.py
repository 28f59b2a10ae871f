"""Re-delivery of replayed inputs: paced per target, each settled by its outcome.

A replayed input is published with a new event ID, the original idempotency key,
status ``replayed``, ``replay_of`` and ``replay_id``. The flow's outcome for the
step names the replayed event as its cause (or carries the ``replay_id``); that
outcome settles the item: ``ok``/``duplicate`` succeed, ``dead_lettered``/``failed``
fail, silence past ``outcome_timeout`` is a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from collector import Bus
from tracing import Event, InterlockError, Status, new_event_id

from ._corrections import apply_corrections
from ._models import Corrections, ItemState
from ._ratelimit import RateLimiter

__all__ = ["ItemResult", "Live", "Redelivery"]

_FINAL = frozenset({Status.OK, Status.DUPLICATE, Status.DEAD_LETTERED, Status.FAILED})


@dataclass
class _Waiter:
    step: str
    future: asyncio.Future[Event]


@dataclass
class _Lane:
    """Pacing for one target system."""

    semaphore: asyncio.Semaphore
    limiter: RateLimiter


@dataclass
class ItemResult:
    """How one item of a replay ended."""

    dead_letter_id: str
    state: ItemState
    replayed_event_id: str | None = None
    outcome_event_id: str | None = None
    error: str | None = None


@dataclass
class Live:
    """Counters of a running replay, overlaid on the stored row by ``progress``."""

    delivered: int = 0
    succeeded: int = 0
    failed: int = 0
    items: dict[str, ItemState] = field(default_factory=dict)


class Redelivery:
    """Re-publishes replayed inputs at a bounded pace and waits for each step's outcome.

    One lane per target system: at most ``concurrency`` items in flight and
    ``rate_per_second`` publishes, across all replays. ``on_event`` is the bus
    handler that settles the waiting items. Corrections are applied (and validated
    again) with ``payload_models``, the installed flows' payload models.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        rate_per_second: float,
        concurrency: int,
        burst: int,
        outcome_timeout: float,
        clock: Callable[[], datetime],
        payload_models: Mapping[str, type[BaseModel]],
    ) -> None:
        self._bus = bus
        self._payload_models = payload_models
        self.rate_per_second = rate_per_second
        self.concurrency = concurrency
        self._burst = burst
        self._outcome_timeout = outcome_timeout
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._by_cause: dict[str, _Waiter] = {}
        self._by_replay: dict[tuple[str, str, str], _Waiter] = {}

    def cancel_all(self) -> None:
        """Cancel every wait for an outcome (on stop)."""
        for waiter in [*self._by_cause.values(), *self._by_replay.values()]:
            if not waiter.future.done():
                waiter.future.cancel()
        self._by_cause.clear()
        self._by_replay.clear()

    def _lane(self, target: str | None) -> _Lane:
        key = target or "unknown"
        lane = self._lanes.get(key)
        if lane is None:
            lane = _Lane(
                asyncio.Semaphore(self.concurrency), RateLimiter(self.rate_per_second, self._burst)
            )
            self._lanes[key] = lane
        return lane

    async def deliver(
        self,
        replay_id: str,
        item: dict[str, Any],
        source: Event | None,
        corrections: Corrections,
        live: Live,
    ) -> ItemResult:
        dl_id = item["dead_letter_id"]
        if source is None:
            return ItemResult(dl_id, ItemState.FAILED, error="input event not in the lineage")
        lane = self._lane(item["target"])
        async with lane.semaphore:
            await lane.limiter.acquire()
            payload = source.payload
            if corrections:
                payload, _ = apply_corrections(
                    source.payload, corrections, payload_models=self._payload_models
                )
            now = self._clock()
            replayed = source.model_copy(
                update={
                    "event_id": new_event_id(),
                    "status": Status.REPLAYED,
                    "replay_of": dl_id,
                    "replay_id": replay_id,
                    "payload": payload,
                    "event_time": now,
                    "recorded_at": now,
                    "error": None,
                    "duration_ms": None,
                    "attempt": 1,
                }
            )
            loop = asyncio.get_running_loop()
            waiter = _Waiter(item["step"], loop.create_future())
            replay_key = (replay_id, item["correlation_id"], item["step"])
            self._by_cause[replayed.event_id] = waiter
            self._by_replay[replay_key] = waiter
            try:
                try:
                    await self._bus.publish(replayed)
                except InterlockError as exc:
                    live.failed += 1
                    live.items[dl_id] = ItemState.FAILED
                    return ItemResult(dl_id, ItemState.FAILED, error=f"bus: {exc.message}")
                live.delivered += 1
                live.items[dl_id] = ItemState.DELIVERED
                try:
                    outcome = await asyncio.wait_for(waiter.future, self._outcome_timeout)
                except TimeoutError:
                    live.failed += 1
                    live.items[dl_id] = ItemState.TIMEOUT
                    return ItemResult(
                        dl_id,
                        ItemState.TIMEOUT,
                        replayed.event_id,
                        error=f"no outcome within {self._outcome_timeout:g}s",
                    )
            finally:
                self._by_cause.pop(replayed.event_id, None)
                if self._by_replay.get(replay_key) is waiter:
                    del self._by_replay[replay_key]
        if outcome.status in (Status.OK, Status.DUPLICATE):
            live.succeeded += 1
            live.items[dl_id] = ItemState.SUCCEEDED
            return ItemResult(dl_id, ItemState.SUCCEEDED, replayed.event_id, outcome.event_id)
        live.failed += 1
        live.items[dl_id] = ItemState.FAILED
        error = outcome.error
        return ItemResult(
            dl_id,
            ItemState.FAILED,
            replayed.event_id,
            outcome.event_id,
            f"{error.reason.value}: {error.message}" if error else outcome.status.value,
        )

    async def on_event(self, event: Event) -> None:
        """Bus handler: settle the item waiting for this step outcome, if any."""
        if event.status not in _FINAL:
            return
        waiter = self._by_cause.get(event.causation_id or "")
        if waiter is None or waiter.step != event.step:
            waiter = (
                self._by_replay.get((event.replay_id, event.correlation_id, event.step))
                if event.replay_id
                else None
            )
        if waiter is not None and waiter.step == event.step and not waiter.future.done():
            waiter.future.set_result(event)
