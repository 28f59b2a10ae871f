"""The whole control API as the runtime assembles it (collector app with the SLA, replay
and explore routers over one in-memory lineage, role tokens), served by uvicorn on a
free loopback port from a thread with its own event loop, seeded with recent traffic."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from _fake_api import _Chain
from prometheus_client import CollectorRegistry

from adapters.sandbox._process import free_port, wait_for_http
from collector._api import create_app
from collector._auth import Role, TokenStore
from collector._bus import EmbeddedBus
from collector._explore import explore_router
from collector._lineage import AsyncLineage, LineageStore
from collector._metrics import Metrics
from replay import ReplayService, replay_router
from sla_rules import SlaEngine, load_rules, sla_router
from tracing import ErrorInfo, Event, Reason, Status, System

#: token -> (name, role); "exec" is a viewer who uses the executive view.
TOKENS: dict[str, tuple[str, Role]] = {
    "tok-viewer": ("vic", Role.VIEWER),
    "tok-exec": ("erin", Role.VIEWER),
    "tok-operator": ("olga", Role.OPERATOR),
    "tok-approver": ("anna", Role.APPROVER),
    "tok-admin": ("ada", Role.ADMIN),
}

#: Transactions the seed makes: six completed ones, one dead-lettered at the ERP.
COMPLETED = [f"cid-ok-{i:03d}" for i in range(6)]
DEAD = "cid-dl-900"


def seed_events(now: datetime) -> list[Event]:
    """Recent quote-to-cash traffic: billing answers one 429 per order (then the retry
    succeeds 2 s later), and one order dead-letters at the ERP after two 503s."""
    crm, erp, billing, support, il = (
        System.CRM,
        System.ERP,
        System.BILLING,
        System.SUPPORT,
        System.INTERLOCK,
    )
    limited = ErrorInfo(
        reason=Reason.RATE_LIMIT, message="429 Too Many Requests", retriable=True, status_code=429
    )
    down = ErrorInfo(
        reason=Reason.DOWNSTREAM_UNAVAILABLE,
        message="ERP answered 503",
        retriable=True,
        status_code=503,
    )
    events: list[Event] = []
    for i, cid in enumerate(COMPLETED):
        c = _Chain(cid, f"001C{i}", f"{1000 + 250 * i}.00", now - timedelta(minutes=40 - i))
        won = c.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
        c.add(0.6, il, erp, "order.created", "erp.create_order")
        c.add(0.4, il, billing, "subscription.created", "billing.create_subscription",
              status=Status.RETRYING, error=limited)  # fmt: skip
        c.add(2, il, billing, "subscription.created", "billing.create_subscription", attempt=2)
        c.add(5, il, erp, "invoice.posted", "erp.post_invoice")
        c.add(1, il, support, "case.enriched", "support.enrich_case", cause=won)
        events += c.events
    d = _Chain(DEAD, "001D9", "98000.00", now - timedelta(minutes=20))
    d.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    d.add(1, il, erp, "order.created", "erp.create_order", status=Status.RETRYING, error=down)
    d.add(2, il, erp, "order.created", "erp.create_order", status=Status.RETRYING, error=down,
          attempt=2)  # fmt: skip
    d.add(4, il, erp, "order.created", "erp.create_order", status=Status.DEAD_LETTERED,
          attempt=3, error=down)  # fmt: skip
    return events + d.events


class StackApi:
    """``StackApi().start()`` serves the seeded API at ``url``; ``stop()`` ends it."""

    def __init__(self, extra_events: list[Event] | None = None) -> None:
        #: Events seeded besides ``seed_events`` (a test's own scenario).
        self.extra_events = list(extra_events or [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.now = datetime.now(UTC)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> StackApi:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        wait_for_http(f"{self.url}/healthz", timeout=30)
        return self

    async def _main(self) -> None:
        services: list[Any] = []
        try:
            lineage = AsyncLineage(LineageStore(":memory:"))
            await lineage.open()
            await lineage.write_batch(seed_events(self.now) + self.extra_events)
            bus = EmbeddedBus(partitions=2)
            replay = ReplayService(lineage, bus, probe=None, outcome_timeout=2.0)
            await replay.start()
            await bus.start()
            engine = SlaEngine(lineage, load_rules())
            await engine.start()
            services = [engine, replay, bus]
            tokens = TokenStore()
            for token, (name, role) in TOKENS.items():
                tokens.add(name, role, token)

            async def health() -> dict[str, str]:
                return {"bus": "ok", "erp": "ok", "billing": "ok", "crm": "ok", "support": "ok"}

            app = create_app(
                lineage=lineage,
                metrics=Metrics(CollectorRegistry()),
                tokens=tokens,
                # Wired as the runtime wires it: acknowledgements join the audit trail.
                routers=[
                    sla_router(engine, audit=replay.record),
                    replay_router(replay),
                    explore_router(lineage),
                ],
                health=health,
            )
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
            self._server = uvicorn.Server(config)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._server.serve()
        finally:
            for service in services:
                await service.stop()
            await lineage.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
