"""The reconciliation plug-in: the ``[reconcile]`` section, the runs' routes, the
schedule, and ``interlock reconcile``.

Reconciliation reads the four systems through their adapters (the CRM's won deals,
the ERP's sales, invoices and parties, billing's subscriptions, paid invoices and
customers, the support desk's entitlement tickets and organizations) and compares
them; see docs/reconciliation.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.flows import SPEC as FLOW
from adapters.support.plugin import SupportSettings
from collector import Host, Principal, Role, Stage, component
from tracing import ConfigError, ConflictError

from ._api import reconcile_router
from ._compare import deal_correlation_id
from ._holdings import (
    BillingHoldings,
    CrmHoldings,
    ErpHoldings,
    Holdings,
    SupportHoldings,
    read_holdings,
)
from ._model import Check, Period, period_for
from ._resync import DEAL_CHECKS, DealSource, held_trigger
from ._service import Reader, Reconciler

__all__ = [
    "RULE_FILE",
    "ReconcilePlugin",
    "ReconcileSettings",
    "Schedule",
    "parse_schedule",
    "plugin",
]

log = logging.getLogger(__name__)

#: The drift SLA rule this room ships (``reconciliation_drift`` over the stored runs).
RULE_FILE = Path(__file__).with_name("reconciliation.yaml")

#: Who a scheduled run is recorded as.
SCHEDULER = Principal("scheduler", Role.OPERATOR)


@dataclass(frozen=True)
class Schedule:
    """Run over the last ``period`` every ``every_seconds``."""

    period: str
    every_seconds: float


def parse_schedule(text: str) -> tuple[Schedule, ...]:
    """``"day@3600,month@86400"``: each ``period@seconds``; empty: no schedule."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        period, _, every = part.partition("@")
        if period not in ("day", "week", "month"):
            raise ValueError(f"{part!r}: the period is day, week or month")
        try:
            seconds = float(every)
        except ValueError:
            raise ValueError(f"{part!r}: expected period@seconds, e.g. day@3600") from None
        if seconds <= 0:
            raise ValueError(f"{part!r}: the interval must be positive")
        out.append(Schedule(period, seconds))
    return tuple(out)


class ReconcileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``period@seconds`` pairs: hourly over the last day and nightly over the last
    #: month by default; empty turns the schedule off (runs on demand only).
    schedule: str = "day@3600,month@86400"
    #: The first scheduled run waits this long after start (the systems warm up).
    first_run_after_seconds: float = Field(300.0, ge=0)
    #: A transaction the lineage shows moving within this window is in flight: what
    #: it has not written yet is not reported missing.
    settle_minutes: float = Field(15.0, ge=0)

    @field_validator("schedule")
    @classmethod
    def _valid(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        return parse_schedule(self.schedule)


class ReconcilePlugin:
    """Installs reconciliation across the systems."""

    name = "reconcile"
    after = ("crm", "erp", "billing", "support", "servicenow", "replay")
    sections: Mapping[str, type[BaseModel]] = {"reconcile": ReconcileSettings}
    #: The SLA rule files this room ships, declared so that ``interlock rules
    #: export-prometheus`` finds them without installing the plug-in.
    rule_files = (RULE_FILE,)

    def __init__(
        self,
        *,
        read: Reader | None = None,
        scheduled: bool = True,
        deals: DealSource | None = None,
    ) -> None:
        #: What the systems hold (tests and benches pass their own); default: read the
        #: host's crm, erp, billing and support adapters.
        self.read = read
        self.scheduled = scheduled
        #: Where a won deal Interlock never saw is read again; default: the crm adapter.
        self.deals = deals

    async def install(self, host: Host) -> None:
        s = host.section("reconcile", ReconcileSettings)

        # The support desk is the one quote-to-cash writes to: Zendesk or ServiceNow.
        desk = host.section("support", SupportSettings).desk_system

        async def read_systems(period: Period) -> Holdings:
            wanted = ("crm", "erp", "billing", desk)
            missing = [name for name in wanted if name not in host.adapter_systems]
            if missing:
                raise ConfigError(
                    "reconcile", f"needs the {', '.join(missing)} adapter(s), not installed"
                )
            return await read_holdings(
                period,
                crm=cast(CrmHoldings, host.adapter("crm")),
                erp=cast(ErpHoldings, host.adapter("erp")),
                billing=cast(BillingHoldings, host.adapter("billing")),
                support=cast(SupportHoldings, host.adapter(desk)),
            )

        async def resync(item: dict[str, Any], dry_run: bool) -> dict[str, Any]:
            if item["check"] == Check.PAID_INVOICE_TO_ERP.value:
                if dry_run:
                    return {"events": 0, "would": "read billing's events again"}
                # Billing owns the invoice: read its events again; the ledger skips
                # the ones already handled, so only what never arrived is published.
                webhooks = host.shared("billing.webhooks", _not_installed("billing"))
                count: int = await webhooks.catch_up(host.adapter("billing"))
                return {"events": count}
            if item["check"] in DEAL_CHECKS:
                return await self._resync_deal(host, item, dry_run=dry_run)
            raise ConflictError(
                f"re-reading a {item['check']} record from {item['system']} is not built; "
                "replay the transaction or explain the discrepancy",
            )

        reconciler = Reconciler(
            host.lineage,
            self.read or read_systems,
            settle=timedelta(minutes=s.settle_minutes),
            audit=host.audit if host.auditor is not None else None,
            resync=resync,
        )
        host.shared("reconcile.service", lambda: reconciler)
        # The drift SLA rule reads these runs; the SLA plug-in loads it with the rest.
        host.add_rule_files(*self.rule_files)
        host.add_component(reconciler, Stage.SERVICE, name="reconcile")
        host.add_router(reconcile_router(reconciler))
        if s.schedules and self.scheduled:
            host.add_component(_scheduler(reconciler, s), Stage.TRAFFIC, name="reconcile-schedule")

    async def _resync_deal(
        self, host: Host, item: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        """A won deal Interlock never saw: read it from the CRM and hold its trigger
        for a replay (see ``_resync``); nothing is created in any system here."""
        ref = str(item["key"])
        cid = deal_correlation_id(ref)

        def known(conn: Any) -> int:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE correlation_id = ?", [cid]
            ).fetchone()
            return int(row[0]) if row else 0

        if await host.lineage.read(known):
            raise ConflictError(
                f"the lineage holds transaction {cid} now (an earlier re-sync, or the flow "
                "since): replay its dead letter or run the reconciliation again"
            )
        crm = self.deals or cast(DealSource, host.adapter("crm"))
        order = await crm.load_order(ref)
        first = FLOW.steps.steps[0]
        money = first.step in host.money_steps
        trigger, letter = held_trigger(
            order, item, first_step=first.step, first_kind=first.kind or "", money=money
        )
        answer: dict[str, Any] = {
            "correlation_id": cid,
            "order": {
                "order_ref": ref,
                "customer_id": order.customer.customer_id,
                "currency": order.currency,
                "amount": str(trigger.amount),
            },
            "money": money,
        }
        if dry_run:
            return {**answer, "events": 0, "would_publish": [trigger.kind, letter.kind]}
        await host.bus.publish(trigger)
        await host.bus.publish(letter)
        return {
            **answer,
            "events": 2,
            "trigger_event": trigger.event_id,
            "dead_letter": letter.event_id,
            # Starting the flow is a replay of this dead letter: dry run, four eyes, audit.
            "replay_selection": {"event_id": letter.event_id},
        }

    def register_cli(self, sub: Any) -> None:
        """The ``interlock reconcile`` sub-command."""
        from ._cli import register_cli

        register_cli(sub)


def _not_installed(system: str) -> Any:
    def fail() -> Any:
        raise ConfigError("reconcile", f"re-sync needs the {system} ingress, not installed")

    return fail


def _scheduler(reconciler: Reconciler, s: ReconcileSettings) -> Any:
    tasks: list[asyncio.Task[None]] = []

    async def every(schedule: Schedule) -> None:
        await asyncio.sleep(s.first_run_after_seconds)
        while True:
            try:
                await reconciler.run(period_for(schedule.period), trigger="schedule", by=SCHEDULER)
            except Exception:
                log.exception("scheduled reconciliation (%s) failed", schedule.period)
            await asyncio.sleep(schedule.every_seconds)

    async def start() -> None:
        tasks.extend(asyncio.create_task(every(x)) for x in s.schedules)

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return component("reconcile-schedule", start=start, stop=stop)


plugin = ReconcilePlugin()
