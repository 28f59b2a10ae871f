"""Change detection: which customers changed in which system since the last poll.

| system | what is read |
|---|---|
| CRM | Accounts by ``SystemModstamp`` (SOQL), like the opportunity poller |
| ERP | parties by ``write_date`` (``search_read``) |
| billing | ``customer.updated`` events (``GET /v1/events``: the webhooks' catch-up path) |
| support | organizations by ``updated_at`` |

Each poll reads back ``overlap`` before the previous one (Tryton stamps the
transaction's start, clocks differ); a customer seen twice is synced twice, which is
harmless: a sync with nothing new does nothing. A system that cannot be read is
logged and read again from the same point next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tracing import InterlockError

from ._service import CustomerMaster

__all__ = ["CustomerWatcher"]

log = logging.getLogger(__name__)

_CUSTOMER_KEY = "interlock_customer_id"


class CustomerWatcher:
    """Polls the four systems for changed customers and syncs each one."""

    def __init__(
        self,
        master: CustomerMaster,
        *,
        interval: float = 30.0,
        overlap: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._master = master
        self._interval = interval
        self._overlap = timedelta(seconds=overlap)
        self._clock = clock
        start = clock()
        self._since = dict.fromkeys(("crm", "erp", "billing", "support"), start)
        self._task: asyncio.Task[None] | None = None
        self.errors = 0
        #: Customers a system reported changed whose sync did not finish: retried every
        #: round until it does (the change positions have moved past them).
        self.pending: set[str] = set()

    async def changed(self) -> set[str]:
        """The customer IDs some system changed since the last poll."""
        s = self._master.systems
        found: set[str] = set()
        readers: dict[str, Callable[[datetime], Any]] = {
            "crm": lambda since: s.crm.account_changes(since),  # type: ignore[attr-defined]
            "erp": lambda since: s.erp.party_changes(since),  # type: ignore[attr-defined]
            "billing": self._billing_changes,
            "support": lambda since: s.support.organization_changes(since),  # type: ignore[attr-defined]
        }
        for system, read in readers.items():
            now = self._clock()
            try:
                rows = await read(self._since[system] - self._overlap)
            except InterlockError as exc:
                self.errors += 1
                log.warning("customer changes in %s not read: %s", system, exc.message)
                continue
            found.update(r[0] if isinstance(r, tuple) else r for r in rows)
            self._since[system] = now
        return found

    async def _billing_changes(self, since: datetime) -> list[str]:
        billing: Any = self._master.systems.billing
        events = await billing.list_events(created_gte=int(since.timestamp()))
        out = []
        for event in events:
            if event.get("type") != "customer.updated":
                continue
            obj = (event.get("data") or {}).get("object") or {}
            key = (obj.get("metadata") or {}).get(_CUSTOMER_KEY)
            if key:
                out.append(str(key))
        return out

    async def poll_once(self) -> list[str]:
        """Sync every changed customer and every one still pending; the ones synced.

        A sync that fails keeps its customer pending for the next round. A system that
        is down or throttling (a retriable error) ends the round at once: the customers
        not reached wait too, and one warning says so instead of one per customer."""
        todo = sorted(self.pending | await self.changed())
        synced = []
        for i, customer_id in enumerate(todo):
            try:
                await self._master.sync(customer_id)
            except InterlockError as exc:
                self.errors += 1
                self.pending.add(customer_id)
                if exc.retriable:
                    self.pending.update(todo[i:])
                    log.warning("customer syncs paused, %d wait for the next round: %s",
                                len(todo) - i, exc.message)  # fmt: skip
                    break
                log.warning("customer %s not synced: %s", customer_id, exc.message)
                continue
            self.pending.discard(customer_id)
            synced.append(customer_id)
        return synced

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.poll_once()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="customer-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
