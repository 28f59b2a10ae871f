"""Polling, once: the owned poll loop, the time-ordered feed read from its stored
position, and the builder of the event a polled or pushed change becomes.

```
PollLoop            run / start / stop, every ``interval``; an outage is logged, counted, retried
  └─ FeedPoller     reads ``read(since)`` from its TimeCursor (in the PositionStore), hands each
                    fresh item to ``handle`` and stores the position after the events are out;
                    ``memory`` (what was already published, by key) is stored beside it
ingress_event()     a ``receive <kind>`` span and the Event under its correlation ID
```

Every poller of a system's change feed (the CRM's opportunities, the ERP's sales, the desk's
tickets) is a :class:`FeedPoller`; one without a feed position (the credit-hold recheck reads
the lineage) is a :class:`PollLoop`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from tracing import Event, InterlockError, Status, System, current_trace_context, tracer

from ._positions import PositionStore, TimeCursor

__all__ = ["FeedPoller", "PollLoop", "ingress_event"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def ingress_event(
    *,
    kind: str,
    step: str,
    source: System,
    correlation_id: str,
    idempotency_key: str,
    entity_type: str,
    entity_id: str,
    event_time: datetime,
    payload: Mapping[str, Any],
    span_attributes: Mapping[str, str | int] | None = None,
    status: Status = Status.OK,
    amount: Decimal | None = None,
    currency: str | None = None,
    customer_id: str | None = None,
) -> Event:
    """The event a change read from (or pushed by) ``source`` becomes, in a new
    ``receive <kind>`` span: the root of the transaction's trace."""
    with tracer().start_as_current_span(
        f"receive {kind}", attributes=dict(span_attributes or {})
    ) as span:
        trace = current_trace_context(span)
    return Event(
        correlation_id=correlation_id,
        trace_id=trace.trace_id,
        span_id=trace.span_id,
        trace_flags=trace.trace_flags,
        tracestate=trace.tracestate,
        idempotency_key=idempotency_key,
        source=source,
        target=System.INTERLOCK,
        kind=kind,
        step=step,
        entity_type=entity_type,
        entity_id=entity_id,
        event_time=event_time,
        status=status,
        amount=amount,
        currency=currency,
        customer_id=customer_id,
        payload=dict(payload),
    )


class PollLoop:
    """``poll_once`` every ``interval`` seconds in one owned task.

    An :class:`InterlockError` (the system is down, refuses, times out) is counted in
    ``errors``, kept in ``last_error``, logged and retried at the next tick; anything else
    is a defect and ends the task loudly.
    """

    def __init__(self, *, interval: float, label: str) -> None:
        self._interval = interval
        self._label = label
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_success: datetime | None = None

    async def poll_once(self) -> list[Event]:
        raise NotImplementedError

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                self.polls += 1
                await self.poll_once()
                self.last_success = datetime.now(UTC)
            except InterlockError as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc.message}"
                log.warning("%s poll failed: %s", self._label, self.last_error)
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self._label)

    async def stop(self) -> None:
        """Cancel the loop and wait for it; safe twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class FeedPoller(PollLoop, Generic[T]):
    """A time-ordered change feed, read from its position in ``positions`` under ``name``.

    Subclasses say how to read (``read(since)``), how an item is marked (``mark(item)``:
    a key unique per change, such as ``ID@modstamp``, and its time) and what an item
    becomes (``handle(item)``: publish and return its event, or ``None``). Reads overlap
    by ``overlap``; the overlap's re-reads are recognised by their mark and skipped.

    The position is written after the poll's items are handled (their events
    acknowledged), so a crash before that write re-reads them and never skips one; the
    first read stores a position even when nothing came, so a restart after an outage
    resumes there. ``memory`` (key → value, at most ``memory_kept`` entries, oldest
    forgotten first) is what the subclass must remember across restarts to tell news
    from a repeat; a subclass marks it changed with ``remember``.
    """

    def __init__(
        self,
        *,
        positions: PositionStore | None,
        name: str,
        since: datetime | None,
        overlap: timedelta,
        interval: float,
        label: str,
        memory_name: str | None = None,
        memory_kept: int = 100_000,
    ) -> None:
        super().__init__(interval=interval, label=label)
        self._positions = positions or PositionStore(None)
        self._name = name
        self._stored = self._positions.get(name) is not None
        self._cursor = TimeCursor.from_json(
            self._positions.get(name),
            default_at=since or datetime.now(UTC) - timedelta(minutes=5),
            overlap=overlap,
        )
        self._memory_name = memory_name or f"{name}.memory"
        self._memory_kept = memory_kept
        self.memory: dict[str, Any] = self._memory_from_json(
            self._positions.get(self._memory_name) or {}
        )
        self._memory_changed = False

    @property
    def position(self) -> datetime:
        """The newest change time read and acknowledged so far."""
        return self._cursor.at

    async def read(self, since: datetime) -> Iterable[T]:
        raise NotImplementedError

    def mark(self, item: T) -> tuple[str, datetime]:
        raise NotImplementedError

    async def handle(self, item: T) -> Event | None:
        raise NotImplementedError

    def remember(self, key: str, value: Any = None) -> None:
        self.memory.pop(key, None)
        self.memory[key] = value
        self._memory_changed = True

    def _memory_from_json(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data.get("items") or {})

    def _memory_to_json(self) -> dict[str, Any]:
        return {"items": self.memory}

    async def poll_once(self) -> list[Event]:
        items = await self.read(self._cursor.read_from)
        published: list[Event] = []
        progressed = False
        try:
            for item in items:
                key, when = self.mark(item)
                if not self._cursor.fresh(key):
                    continue
                event = await self.handle(item)
                if event is not None:
                    published.append(event)
                # Only once its event is published (acknowledged) does the item count as read.
                self._cursor.advance(key, when)
                progressed = True
        finally:
            if progressed or not self._stored:
                self._cursor.prune()
                await self._positions.put(self._name, self._cursor.to_json())
                self._stored = True
            if self._memory_changed:
                while len(self.memory) > self._memory_kept:
                    del self.memory[next(iter(self.memory))]
                await self._positions.put(self._memory_name, self._memory_to_json())
                self._memory_changed = False
        return published
