"""Storing one consumed batch, whatever the lineage answers: retry, split, dead-letter.

A batch is written in chunks of at most ``budget`` rows. A chunk that fails is
classified (``collector._lineage_errors``):

- **resource** (out of memory, I/O, a commit that could not pin a block) or
  **fatal** (the store reopened its database): retried after a pause that doubles
  up to ``WriteRetry.max_delay``; after ``attempts_before_split`` failures the
  chunk is halved and the budget with it, so what fits in memory lands. A single
  row that keeps failing for want of resources is retried, never dead-lettered:
  the store is short of room, the row is fine. The consumer's health says so
  (``ConsumerLoop.health``).
- **poison** (the rows' own values): the chunk is halved at once; a single row
  that fails twice is sent to the dead-letter topic and recorded in the lineage
  as an open dead letter (reason ``validation``, step ``collector.store``).

Rows are written at least once (a retry after a commit whose answer was lost meets
the lineage's dedupe on event ID), and the offsets are committed only once every
chunk is stored, so a crash in between means redelivery, never loss.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tracing import Event

from ._kafka_metrics import KafkaMetrics
from ._lineage_errors import WriteErrorKind, classify_write_error

__all__ = ["BatchWriter", "DeadLetterRow", "WriteRetry", "WriteRows"]

log = logging.getLogger(__name__)

#: Writes rows ``[start, stop)`` of the batch plus ``events`` (lineage records of
#: dead-lettered messages) in one lineage transaction; returns once it is durable.
WriteRows = Callable[[int, int, Sequence[Event]], Awaitable[None]]
#: Sends row ``index`` to the dead-letter topic with ``message``; returns its record.
DeadLetterRow = Callable[[int, str], Awaitable[Event]]

_GROW_AFTER = 10
_MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class WriteRetry:
    """How a failed batch write is retried.

    The pause before retry ``n`` is ``base_delay * 2**(n-1)``, at most
    ``max_delay``, with ±20 % jitter; a chunk is halved after
    ``attempts_before_split`` failed attempts.
    """

    base_delay: float = 0.25
    max_delay: float = 10.0
    attempts_before_split: int = 3

    def __post_init__(self) -> None:
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")
        if self.attempts_before_split < 1:
            raise ValueError("attempts_before_split must be at least 1")

    def delay(self, attempt: int) -> float:
        pause = min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 30))
        return float(pause * random.uniform(0.8, 1.2))


class BatchWriter:
    """Writes consumed batches through ``WriteRows`` until every row is stored or
    dead-lettered; one per consumer loop (it keeps the row budget)."""

    def __init__(
        self,
        group: str,
        metrics: KafkaMetrics,
        *,
        max_rows: int,
        retry: WriteRetry | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.group = group
        self.metrics = metrics
        self.retry = retry or WriteRetry()
        self.max_rows = max_rows
        self._budget = max_rows
        self._streak = 0
        #: The last write failure, for health reports; cleared by a success.
        self.last_error: str | None = None
        # Set while the consumer leaves: a failed write is then raised, not retried.
        self._stopping = asyncio.Event()
        metrics.write_limit.labels(group).set(max_rows)

    def stop_retrying(self) -> None:
        """Raise the next failure instead of retrying it (the consumer is leaving)."""
        self._stopping.set()

    def resume(self) -> None:
        self._stopping.clear()

    def bound(self, rows: int) -> None:
        """Write at most ``rows`` rows at once from now on (a memory limit's share)."""
        self.max_rows = max(1, min(self.max_rows, rows))
        self._budget = min(self._budget, self.max_rows)
        self.metrics.write_limit.labels(self.group).set(self._budget)

    @property
    def budget(self) -> int:
        """Rows written at once now (at most ``max_rows``)."""
        return self._budget

    async def store(
        self,
        rows: int,
        events: Sequence[Event],
        write: WriteRows,
        dead_letter: DeadLetterRow,
    ) -> None:
        """Store ``rows`` batch rows and the ``events`` after them, chunk by chunk."""
        total = rows + len(events)

        async def write_units(start: int, stop: int) -> None:
            # Units are the batch rows, then the events: one index space to split.
            await write(
                min(start, rows),
                min(stop, rows),
                events[max(start - rows, 0) : max(stop - rows, 0)],
            )

        letters: list[Event] = []

        async def poison(unit: int, message: str) -> None:
            if unit < rows:
                letters.append(await dead_letter(unit, message))
            else:
                # One of our own dead-letter records: its message is in the
                # dead-letter topic already; say loudly that its record is not.
                log.error(
                    "group %s: the lineage refused the dead-letter record %s: %s",
                    self.group,
                    events[unit - rows].event_id,
                    message,
                )

        await self._chunks(total, write_units, poison)
        if letters:

            async def write_letters(start: int, stop: int) -> None:
                await write(0, 0, letters[start:stop])

            async def unstorable(unit: int, message: str) -> None:
                log.error(
                    "group %s: the lineage refused the dead-letter record %s: %s",
                    self.group,
                    letters[unit].event_id,
                    message,
                )

            await self._chunks(len(letters), write_letters, unstorable)

    async def _chunks(
        self,
        total: int,
        write: Callable[[int, int], Awaitable[None]],
        poison: Callable[[int, str], Awaitable[None]],
    ) -> None:
        start = 0
        while start < total:
            stop = min(total, start + self._budget)
            await self._range(start, stop, write, poison)
            start = stop

    async def _range(
        self,
        start: int,
        stop: int,
        write: Callable[[int, int], Awaitable[None]],
        poison: Callable[[int, str], Awaitable[None]],
    ) -> None:
        attempt = 0
        while True:
            try:
                await write(start, stop)
            except asyncio.CancelledError:
                raise
            # Every failure of a write is classified and handled below; none may end
            # ingest (an unknown one counts as resource: retried, never dropped).
            except Exception as exc:
                kind = classify_write_error(exc)
                attempt += 1
                self.metrics.write_failures.labels(self.group, kind.value).inc()
                self.last_error = f"{kind.value}: {str(exc)[:_MESSAGE_LIMIT]}"
                size = stop - start
                log.warning(
                    "group %s: lineage write of %d rows failed (%s, attempt %d): %s",
                    self.group,
                    size,
                    kind.value,
                    attempt,
                    exc,
                )
                if kind is WriteErrorKind.POISON:
                    if size > 1:
                        break  # split: find the rows at fault
                    if attempt >= 2:
                        await poison(start, self.last_error)
                        return
                elif size > 1 and attempt >= self.retry.attempts_before_split:
                    self._shrink(size)
                    break
                if not await self._pause(self.retry.delay(attempt)):
                    raise  # leaving: the batch stays uncommitted and is fetched again
                continue
            self._succeeded()
            return
        middle = start + (stop - start) // 2
        await self._range(start, middle, write, poison)
        await self._range(middle, stop, write, poison)

    async def _pause(self, seconds: float) -> bool:
        """Wait before a retry; False when the consumer is leaving instead."""
        if self._stopping.is_set():
            return False
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    def _shrink(self, size: int) -> None:
        self._budget = max(1, min(self._budget, size // 2))
        self._streak = 0
        self.metrics.write_limit.labels(self.group).set(self._budget)

    def _succeeded(self) -> None:
        self.last_error = None
        if self._budget >= self.max_rows:
            return
        self._streak += 1
        if self._streak >= _GROW_AFTER:
            self._streak = 0
            self._budget = min(self.max_rows, self._budget + max(1, self._budget // 4))
            self.metrics.write_limit.labels(self.group).set(self._budget)
