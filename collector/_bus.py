"""The event bus: one interface, an embedded implementation (here) and Kafka.

Subscribers join a named group; each group sees every event once. Within a
group, events of one correlation ID are handled in order (they hash to one
partition), while different transactions proceed concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tracing import BusError, Event, check_envelope_bounds

from ._invalid_event import invalid_event
from ._wal import Journal

__all__ = ["Bus", "EmbeddedBus", "Handler", "partition_for"]

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


def partition_for(correlation_id: str, partitions: int) -> int:
    """Stable partition of a transaction (the same on every process and run)."""
    return zlib.crc32(correlation_id.encode()) % partitions


class Bus(Protocol):
    """What adapters, flows and the collector need from a transport."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, event: Event) -> None:
        """Return once the bus holds the event (the source may then be acknowledged).

        Raises ``EnvelopeBoundsError`` for an envelope out of the lineage's bounds
        (``tracing.envelope_bounds_error``).
        """
        ...

    def subscribe(
        self, group: str, handler: Handler, *, kinds: frozenset[str] | None = None
    ) -> None:
        """Deliver events (optionally only these kinds) to ``handler`` as group ``group``."""
        ...


@dataclass
class _Group:
    name: str
    handler: Handler
    kinds: frozenset[str] | None
    queues: list[asyncio.Queue[Event]]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    handled: int = 0
    handler_errors: int = 0


class EmbeddedBus:
    """An in-process bus on asyncio queues; the default when no Kafka is configured.

    ``publish`` waits while a partition queue is full, so a slow consumer pushes
    back on producers instead of growing memory without bound.

    With ``journal`` (a directory), ``publish`` returns only once the event is
    fsync'd to an append-only journal (concurrent publishes share one fsync), and
    ``start`` re-delivers every event not yet confirmed stored: call
    :meth:`confirm` with the IDs the collector has committed. Without it the bus
    keeps everything in memory (fast, but lost with the process).
    """

    def __init__(
        self, *, partitions: int = 8, queue_size: int = 10_000, journal: Path | None = None
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self._partitions = partitions
        self._queue_size = queue_size
        self._groups: dict[str, _Group] = {}
        self._running = False
        self._journal = Journal(journal) if journal is not None else None
        self.published = 0
        self.replayed = 0

    def subscribe(
        self, group: str, handler: Handler, *, kinds: frozenset[str] | None = None
    ) -> None:
        if group in self._groups:
            raise ValueError(f"group {group!r} is already subscribed")
        queues: list[asyncio.Queue[Event]] = [
            asyncio.Queue(self._queue_size) for _ in range(self._partitions)
        ]
        self._groups[group] = _Group(group, handler, kinds, queues)
        if self._running:
            self._start_group(self._groups[group])

    async def start(self) -> None:
        if self._running:
            return
        replay: list[Event] = []
        if self._journal is not None:
            replay = await asyncio.to_thread(self._journal.replay)
            await self._journal.open()
        self._running = True
        for group in self._groups.values():
            self._start_group(group)
        for event in replay:
            await self._deliver(event)
        self.replayed += len(replay)
        if self._journal is not None:
            # A record set aside for good is not hidden: it becomes a dead letter
            # (reason validation, the raw record kept), journaled like any event.
            for body, why in self._journal.quarantined:
                dead, _ = invalid_event(body, BusError(why))
                await self.publish(dead)
            self._journal.mark_reported()

    def confirm(self, event_ids: Iterable[str]) -> None:
        """These events are committed to the lineage; the journal may drop them."""
        if self._journal is not None:
            self._journal.confirm(event_ids)

    @property
    def journal(self) -> Journal | None:
        return self._journal

    def _start_group(self, group: _Group) -> None:
        for index, queue in enumerate(group.queues):
            task = asyncio.create_task(
                self._consume(group, queue), name=f"bus:{group.name}:{index}"
            )
            group.tasks.append(task)

    async def _consume(self, group: _Group, queue: asyncio.Queue[Event]) -> None:
        while True:
            event = await queue.get()
            try:
                await group.handler(event)
                group.handled += 1
            except asyncio.CancelledError:
                raise
            # A handler bug must not stop the partition; flows turn their own
            # failures into dead letters, so reaching here is a defect worth a log.
            except Exception:
                group.handler_errors += 1
                log.exception("handler of group %s failed on event %s", group.name, event.event_id)
            finally:
                queue.task_done()

    async def publish(self, event: Event) -> None:
        """Hold ``event`` (journaled first, if there is a journal) and deliver it.

        An envelope out of the lineage's bounds is refused with
        ``EnvelopeBoundsError`` (a ``ValidationError`` naming the field) before
        anything is written: a producer learns it now, not the collector later.
        """
        if not self._running:
            raise BusError("the bus is not running")
        check_envelope_bounds(event)
        if self._journal is not None:
            await self._journal.append(event)
        await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        part = partition_for(event.correlation_id, self._partitions)
        for group in self._groups.values():
            if group.kinds is None or event.kind in group.kinds:
                await group.queues[part].put(event)
        self.published += 1

    async def drain(self) -> None:
        """Wait until every group has handled everything published so far
        (including what handlers publish while draining)."""
        while True:
            queues = [q for g in self._groups.values() for q in g.queues]
            for queue in queues:
                await queue.join()
            # A handler may have published more while we waited on a later queue.
            if all(q.empty() for q in queues) and not self._in_flight():
                return

    def _in_flight(self) -> bool:
        return any(
            q._unfinished_tasks  # type: ignore[attr-defined]  # no public accessor in 3.11
            for g in self._groups.values()
            for q in g.queues
        )

    def backlog(self) -> int:
        return sum(q.qsize() for g in self._groups.values() for q in g.queues)

    async def stop(self) -> None:
        """Stop consuming; safe to call twice. Queued events are handled first."""
        if not self._running:
            return
        await self.drain()
        self._running = False
        tasks = [t for g in self._groups.values() for t in g.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for group in self._groups.values():
            group.tasks.clear()
        if self._journal is not None:
            await self._journal.close()
