"""Runs reconciliations: reads the systems, compares, stores the run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from collector import Principal
from collector.lineage import AsyncLineage
from tracing import ConflictError, InterlockError, NotFoundError, new_event_id

from ._compare import Seen, compare, deal_correlation_id
from ._holdings import Holdings
from ._model import Discrepancy, Period, Repair
from ._store import (
    DDL,
    explain,
    explained_ids,
    finish_run,
    get_run,
    list_runs,
    run_discrepancies,
    start_run,
)

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)

Reader = Callable[[Period], Awaitable[Holdings]]
#: Re-reads one discrepancy's record from its owning system (``dry_run``: says what it
#: would bring and publishes nothing); the answer, with ``events``: how many it brought.
Resync = Callable[[dict[str, Any], bool], Awaitable[dict[str, Any]]]
Auditor = Callable[..., Awaitable[None]]


class Reconciler:
    """Starts runs (one at a time), keeps them in the lineage, answers for them.

    ``read`` gets what the systems hold for a period; a transaction the lineage
    shows moving within ``settle`` (or on hold) is in flight, and what it has not
    written yet is not reported missing.
    """

    def __init__(
        self,
        lineage: AsyncLineage,
        read: Reader,
        *,
        settle: timedelta = timedelta(minutes=15),
        audit: Auditor | None = None,
        resync: Resync | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lineage = lineage
        self._read = read
        self._settle = settle
        self._audit = audit
        self._resync = resync
        self._clock = clock
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._lineage.write(lambda conn: conn.execute(DDL))
        # A run a restart cut off is closed as failed, not left running for ever.
        await self._lineage.write(
            lambda conn: conn.execute(
                "UPDATE reconciliation_runs SET status = 'failed', finished_at = ?, "
                "error = 'interrupted by a restart' WHERE status = 'running'",
                [self._clock()],
            )
        )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def request(self, period: Period, *, trigger: str, by: Principal) -> str:
        """Record a run and start it in the background; its ID."""
        run_id = new_event_id()
        at = self._clock()
        await self._lineage.write(
            lambda conn: start_run(
                conn,
                run_id=run_id,
                period=period.name,
                start=period.start,
                end=period.end,
                trigger=trigger,
                by=by.name,
                at=at,
            )
        )
        if self._audit is not None:
            await self._audit(
                by,
                "reconciliation.run",
                run_id,
                why=None,
                what={
                    "period": period.name,
                    "from": period.start.isoformat(),
                    "to": period.end.isoformat(),
                    "trigger": trigger,
                },
                outcome="started",
            )
        task = asyncio.create_task(self._run(run_id, period), name=f"reconcile-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run_id

    async def run(self, period: Period, *, trigger: str, by: Principal) -> dict[str, Any]:
        """A run to its end (the scheduler and tests); the stored run."""
        run_id = await self.request(period, trigger=trigger, by=by)
        await self.wait(run_id)
        found = await self.get(run_id)
        return found

    async def wait(self, run_id: str) -> None:
        for task in list(self._tasks):
            if task.get_name() == f"reconcile-{run_id}":
                await asyncio.shield(task)

    async def _run(self, run_id: str, period: Period) -> None:
        async with self._lock:
            try:
                holdings = await self._read(period)
                seen, invoices = await self._seen(holdings)
                found = compare(holdings, seen, invoices)
            except (InterlockError, OSError) as exc:
                log.warning("reconciliation %s failed: %s", run_id, exc)
                error = f"{type(exc).__name__}: {exc}"
                await self._finish(run_id, error=error)
                return
            except Exception as exc:
                log.exception("reconciliation %s failed", run_id)
                await self._finish(run_id, error=f"{type(exc).__name__}: {exc}")
                return
            in_flight = sum(1 for s in seen.values() if s.in_flight)
            try:
                await self._finish(
                    run_id,
                    found=found,
                    counts=holdings.counts(),
                    timings=holdings.timings,
                    in_flight=in_flight,
                )
            except InterlockError as exc:
                log.exception("reconciliation %s could not be stored", run_id)
                await self._finish(run_id, error=f"storing the result failed: {exc}")
                return
            log.info(
                "reconciliation %s (%s): %d records, %d discrepancies",
                run_id,
                period.label,
                sum(holdings.counts().values()),
                len(found),
            )

    async def _finish(
        self,
        run_id: str,
        *,
        found: Sequence[Discrepancy] = (),
        counts: dict[str, int] | None = None,
        timings: dict[str, float] | None = None,
        in_flight: int = 0,
        error: str | None = None,
    ) -> None:
        at = self._clock()
        await self._lineage.write(
            lambda conn: finish_run(
                conn,
                run_id,
                at=at,
                found=found,
                counts=counts,
                timings=timings,
                in_flight=in_flight,
                error=error,
                explained=frozenset(explained_ids(conn)),
            )
        )

    async def _seen(self, holdings: Holdings) -> tuple[dict[str, Seen], set[str]]:
        """What the lineage knows of each transaction the holdings name, and which of
        the paid invoices it received."""
        cids = {deal_correlation_id(d.opportunity_id) for d in holdings.deals}
        cids |= {deal_correlation_id(s.reference) for s in holdings.sales if s.reference}
        cids |= {deal_correlation_id(i.order_ref) for i in holdings.paid_invoices if i.order_ref}
        invoice_ids = sorted(i.invoice_id for i in holdings.paid_invoices)
        moving_since = self._clock() - self._settle
        wanted = sorted(cids)

        def read(conn: Any) -> tuple[dict[str, Seen], set[str]]:
            out: dict[str, Seen] = {}
            received: set[str] = set()
            for start in range(0, len(invoice_ids), 1000):
                chunk = invoice_ids[start : start + 1000]
                rows = conn.execute(
                    "SELECT DISTINCT entity_id FROM events WHERE kind = 'invoice.paid' "
                    f"AND entity_id IN ({', '.join('?' for _ in chunk)})",
                    chunk,
                ).fetchall()
                received.update(r[0] for r in rows)
            for start in range(0, len(wanted), 1000):
                chunk = wanted[start : start + 1000]
                rows = conn.execute(
                    "SELECT correlation_id, state, updated_at FROM transactions "
                    f"WHERE correlation_id IN ({', '.join('?' for _ in chunk)})",
                    chunk,
                ).fetchall()
                for cid, state, updated in rows:
                    # A held order waits for a person, visibly (state on_hold): what it
                    # has not written yet is not missing either.
                    moving = state == "on_hold" or (
                        state in ("in_progress", "failed") and updated >= moving_since
                    )
                    out[cid] = Seen(state, in_flight=moving)
            return out, received

        result: tuple[dict[str, Seen], set[str]] = await self._lineage.read(read)
        return result

    async def list(self, *, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        page: tuple[list[dict[str, Any]], int] = await self._lineage.read(
            lambda conn: list_runs(conn, limit=limit, offset=offset)
        )
        return page

    async def get(
        self, run_id: str, *, kind: str | None = None, system: str | None = None
    ) -> dict[str, Any]:
        def read(conn: Any) -> dict[str, Any] | None:
            run = get_run(conn, run_id)
            if run is not None:
                run["items"] = run_discrepancies(conn, run_id, kind=kind, system=system)
            return run

        found = await self._lineage.read(read)
        if found is None:
            raise NotFoundError(f"no reconciliation {run_id}")
        return dict(found)

    async def _item(self, run_id: str, discrepancy_id: str) -> dict[str, Any]:
        run = await self.get(run_id)
        for item in run["items"]:
            if item["discrepancy_id"] == discrepancy_id:
                return dict(item)
        raise NotFoundError(f"no discrepancy {discrepancy_id} in reconciliation {run_id}")

    async def explain(
        self, run_id: str, discrepancy_id: str, *, reason: str, by: Principal
    ) -> dict[str, Any]:
        """Mark a discrepancy explained (audited): it no longer counts as open, here
        or in any later run that finds it again."""
        item = await self._item(run_id, discrepancy_id)
        at = self._clock()
        await self._lineage.write(
            lambda conn: explain(conn, discrepancy_id, reason=reason, by=by.name, at=at)
        )
        await self._record(by, "reconciliation.explain", discrepancy_id, reason, item, "explained")
        return await self._item(run_id, discrepancy_id)

    async def resync(
        self, run_id: str, discrepancy_id: str, *, by: Principal, dry_run: bool = False
    ) -> dict[str, Any]:
        """Re-read the discrepancy's record from the system that owns it (audited);
        ``dry_run`` says what it would bring and publishes nothing."""
        item = await self._item(run_id, discrepancy_id)
        if item["repair"] != Repair.RESYNC.value:
            raise ConflictError(
                f"discrepancy {discrepancy_id} is repaired by {item['repair']}, not a re-sync"
            )
        if self._resync is None:
            raise ConflictError("no system here can re-sync")
        answer = await self._resync({**item, "run_id": run_id}, dry_run)
        outcome = "dry run" if dry_run else "resynced"
        await self._record(by, "reconciliation.resync", discrepancy_id, None, item, outcome)
        return {"discrepancy_id": discrepancy_id, "dry_run": dry_run, **answer}

    async def _record(
        self,
        by: Principal,
        action: str,
        subject: str,
        why: str | None,
        item: dict[str, Any],
        outcome: str,
    ) -> None:
        if self._audit is None:
            return
        what = {k: item[k] for k in ("check", "kind", "system", "key", "value_at_risk", "currency")}
        await self._audit(by, action, subject, why=why, what=what, outcome=outcome)
