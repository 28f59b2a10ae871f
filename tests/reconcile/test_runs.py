"""Runs are stored, listed and read back; a system that cannot be read fails the run
with its reason (never a run left running); the API checks roles and input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from adapters.reconcile import Holdings, Period, Reconciler, period_for
from adapters.reconcile._api import reconcile_router
from adapters.reconcile.plugin import ReconcileSettings, parse_schedule
from collector import ANONYMOUS, Role, TokenStore
from collector.api import install_problem_handlers
from collector.lineage import AsyncLineage, LineageStore
from tracing import DownstreamUnavailable, correlation_id_for

from .test_compare import whole


@pytest.fixture
async def lineage() -> AsyncIterator[AsyncLineage]:
    lin = AsyncLineage(LineageStore())
    await lin.open()
    yield lin
    await lin.close()


async def test_a_run_is_stored_with_its_discrepancies(lineage: AsyncLineage) -> None:
    async def read(period: Period) -> Holdings:
        h = whole("006A")
        h.sales = []
        h.timings = {"crm": 0.01}
        return h

    service = Reconciler(lineage, read)
    await service.start()
    run = await service.run(period_for("day"), trigger="api", by=ANONYMOUS)
    assert (run["status"], run["discrepancies"], run["value_at_risk"]) == (
        "done",
        1,
        {"USD": "1000.00"},
    )
    assert run["counts"]["deals"] == 1 and run["requested_by"] == "anonymous"
    (item,) = run["items"]
    assert (item["kind"], item["system"], item["value_at_risk"]) == ("missing", "erp", "1000.00")
    runs, total = await service.list()
    assert total == 1 and runs[0]["run_id"] == run["run_id"]
    await service.stop()


async def test_a_system_that_cannot_be_read_fails_the_run_with_its_reason(
    lineage: AsyncLineage,
) -> None:
    async def read(period: Period) -> Holdings:
        raise DownstreamUnavailable("ERP down", system="erp")

    service = Reconciler(lineage, read)
    await service.start()
    run = await service.run(period_for("week"), trigger="api", by=ANONYMOUS)
    assert run["status"] == "failed" and "ERP down" in run["error"]
    await service.stop()


async def test_a_run_a_restart_cut_off_is_closed_as_failed(lineage: AsyncLineage) -> None:
    gate = asyncio.Event()

    async def read(period: Period) -> Holdings:
        await gate.wait()
        return whole("006A")

    first = Reconciler(lineage, read)
    await first.start()
    run_id = await first.request(period_for("day"), trigger="api", by=ANONYMOUS)
    await first.stop()
    second = Reconciler(lineage, read)
    await second.start()
    run = await second.get(run_id)
    assert run["status"] == "failed" and run["error"] == "interrupted by a restart"


async def test_the_api_needs_an_operator_to_start_and_names_bad_input(
    lineage: AsyncLineage,
) -> None:
    async def read(period: Period) -> Holdings:
        return whole("006A")

    service = Reconciler(lineage, read)
    await service.start()
    app = FastAPI()
    install_problem_handlers(app)
    tokens = TokenStore()
    tokens.add("ops", Role.OPERATOR, "ops-token")
    tokens.add("eve", Role.VIEWER, "viewer-token")
    app.state.tokens = tokens
    app.include_router(reconcile_router(service))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        viewer = {"Authorization": "Bearer viewer-token"}
        ops = {"Authorization": "Bearer ops-token"}
        refused = await client.post("/api/v1/reconciliations", json={}, headers=viewer)
        assert refused.status_code == 403
        anonymous = await client.get("/api/v1/reconciliations")
        assert anonymous.status_code == 401
        bad = await client.post("/api/v1/reconciliations", json={"period": "custom"}, headers=ops)
        assert bad.status_code == 422 and "needs from and to" in bad.json()["detail"]
        wrong = await client.post("/api/v1/reconciliations", json={"period": "year"}, headers=ops)
        assert wrong.status_code == 422
        started = await client.post(
            "/api/v1/reconciliations",
            json={"period": "custom", "from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00Z"},
            headers=ops,
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        await service.wait(run_id)
        run = (await client.get(f"/api/v1/reconciliations/{run_id}", headers=viewer)).json()
        assert run["status"] == "done" and run["period"] == "custom"
        missing = await client.get("/api/v1/reconciliations/nope", headers=viewer)
        assert missing.status_code == 404
    await service.stop()


def test_the_schedule_setting() -> None:
    assert [(s.period, s.every_seconds) for s in ReconcileSettings().schedules] == [
        ("day", 3600.0),
        ("month", 86400.0),
    ]
    assert parse_schedule("") == ()
    with pytest.raises(ValueError, match="period@seconds"):
        ReconcileSettings(schedule="day@hourly")


async def test_a_deal_missing_everywhere_puts_its_value_at_risk_once(
    lineage: AsyncLineage,
) -> None:
    async def read(period: Period) -> Holdings:
        h = whole("006A")
        h.sales, h.subscriptions, h.entitlements = [], [], {}
        return h

    service = Reconciler(lineage, read)
    await service.start()
    run = await service.run(period_for("day"), trigger="api", by=ANONYMOUS)
    assert run["discrepancies"] == 3 and run["value_at_risk"] == {"USD": "1000.00"}
    await service.stop()


async def test_a_held_order_is_waiting_not_missing(lineage: AsyncLineage) -> None:
    cid = correlation_id_for("crm", "opportunity", "006A")
    old = datetime(2026, 1, 1, tzinfo=UTC)
    await lineage.write(
        lambda conn: conn.execute(
            "INSERT INTO transactions (correlation_id, state, started_at, updated_at, "
            "event_count, failed_count, dead_letter_count) VALUES (?, 'on_hold', ?, ?, 1, 0, 0)",
            [cid, old, old],
        )
    )

    async def read(period: Period) -> Holdings:
        h = whole("006A")
        h.subscriptions, h.entitlements = [], {}
        return h

    service = Reconciler(lineage, read)
    await service.start()
    run = await service.run(period_for("day"), trigger="api", by=ANONYMOUS)
    assert (run["discrepancies"], run["in_flight"]) == (0, 1)
    await service.stop()
