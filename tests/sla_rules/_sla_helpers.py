"""Hand-built lineages for the SLA tests: rows written the way the collector stores them."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import uvicorn

from collector.process import free_port
from sla_rules._memory import DuckDBLineage

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday noon


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Builder:
    """Writes rows straight into the lineage tables, the way the collector stores them."""

    def __init__(self, lineage: DuckDBLineage) -> None:
        self.lineage = lineage
        self._ids = itertools.count(1)

    def event(
        self,
        kind: str,
        at: datetime,
        *,
        corr: str = "c1",
        status: str = "ok",
        step: str | None = None,
        source: str = "interlock",
        target: str | None = None,
        amount: float | None = 1000.0,
        customer: str | None = "001A",
        ingested_at: datetime | None = None,
    ) -> str:
        event_id = f"e{next(self._ids):06d}"
        self.lineage.con.execute(
            """INSERT INTO events (event_id, correlation_id, idempotency_key, source, target,
                   kind, step, entity_type, entity_id, status, attempt, event_time,
                   recorded_at, ingested_at, amount, currency, customer_id, schema_version)
               VALUES (?, ?, ?, ?, ?, ?, ?, 'x', 'x', ?, 1, ?, ?, ?, ?, 'USD', ?, 1)""",
            [event_id, corr, event_id, source, target, kind, step or kind, status, at, at,
             ingested_at or at, None if amount is None else Decimal(str(amount)), customer],
        )  # fmt: skip
        return event_id

    def dead_letter(
        self,
        opened: datetime,
        *,
        state: str = "open",
        changed: datetime | None = None,
        amount: float = 500.0,
        customer: str = "001A",
    ) -> str:
        event_id = f"d{next(self._ids):06d}"
        self.lineage.con.execute(
            """INSERT INTO dead_letters (event_id, correlation_id, step, kind, reason,
                   attempts, amount, currency, customer_id, first_failed_at, last_failed_at,
                   state, state_changed_at)
               VALUES (?, ?, 'erp.order.create', 'order.created', 'validation', 3, ?, 'USD', ?,
                       ?, ?, ?, ?)""",
            [event_id, f"c-{event_id}", Decimal(str(amount)), customer, opened, opened, state,
             changed or opened],
        )  # fmt: skip
        return event_id

    def transaction(
        self,
        corr: str,
        started: datetime,
        updated: datetime,
        *,
        state: str = "in_progress",
        last_kind: str = "order.created",
        amount: float = 1000.0,
        customer: str = "001A",
    ) -> None:
        self.lineage.con.execute(
            """INSERT INTO transactions (correlation_id, customer_id, amount, currency, state,
                   started_at, updated_at, last_kind, event_count, failed_count,
                   dead_letter_count)
               VALUES (?, ?, ?, 'USD', ?, ?, ?, ?, 1, 0, 0)""",
            [corr, customer, Decimal(str(amount)), state, started, updated, last_kind],
        )


def rule_doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "r1",
        "name": "Rule one",
        "objective": "99%",
        "impact_tier": "revenue",
        "indicator": {"kind": "success_ratio", "step": "erp.invoice.post"},
    }
    base.update(overrides)
    return base


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="sla-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


TOKENS = {"viewer": "view-token", "operator": "ops-token"}


def api_app(engine: Any) -> Any:
    """A FastAPI app with the SLA router and a viewer and an operator token."""
    from fastapi import FastAPI

    from collector import Role, TokenStore
    from collector.api import install_problem_handlers
    from sla_rules import sla_router

    app = FastAPI()
    install_problem_handlers(app)  # errors answer as the control API does
    store = TokenStore()
    store.add("vera", Role.VIEWER, TOKENS["viewer"])
    store.add("olivia", Role.OPERATOR, TOKENS["operator"])
    app.state.tokens = store
    app.include_router(sla_router(engine))
    return app


def seed_report_lineage(build: Builder, now: datetime) -> None:
    """Invoice postings: 198 good + 2 bad in the last 7 days, 100 good in the 7 before,
    and a fast burn in the last hour holding 2 x 25,000.00 of value at risk."""
    day = timedelta(days=1)
    for i in range(100):
        build.event("invoice.posted", now - 13 * day + i * 5 * 60 * timedelta(seconds=1),
                    corr=f"prev{i}", step="erp.invoice.post", target="erp")  # fmt: skip
    for i in range(196):
        build.event("invoice.posted", now - 6 * day + i * 2 * 60 * timedelta(seconds=1),
                    corr=f"cur{i}", step="erp.invoice.post", target="erp")  # fmt: skip
    for i in range(2):
        build.event("invoice.posted", now - timedelta(minutes=30 - i), corr=f"ok{i}",
                    step="erp.invoice.post", target="erp")  # fmt: skip
        build.event("invoice.posted", now - timedelta(minutes=20 - i), corr=f"bad{i}",
                    step="erp.invoice.post", target="erp", status="dead_lettered",
                    amount=25_000, customer=f"00C{i}")  # fmt: skip
