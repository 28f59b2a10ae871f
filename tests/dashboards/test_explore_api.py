"""``collector._explore``: adapter figures and throughput from a real in-memory lineage,
and its router mounted on the real control API (roles, bad parameters)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from _hosts import SYSTEMS
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from collector import Role, TokenStore
from collector._explore import adapter_figures, circuit_state, explore_router, throughput
from collector.api import Metrics, create_app
from collector.lineage import AsyncLineage, LineageStore
from tracing import ErrorInfo, Event, Reason, Status, System

NAMES = [s.name for s in SYSTEMS if s.name != "interlock"]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def call(
    n: int,
    target: System,
    status: Status,
    *,
    minutes_ago: float,
    step: str = "s",
    cid: str | None = None,
    error: ErrorInfo | None = None,
    duration: float = 100.0,
) -> Event:
    return Event(
        event_id=f"e-{target.value}-{n}",
        correlation_id=cid or f"c-{target.value}-{n}",
        idempotency_key=f"k-{n}",
        source=System.INTERLOCK,
        target=target,
        kind="x.done",
        step=step,
        entity_type="x",
        entity_id=f"x-{n}",
        status=status,
        event_time=NOW - timedelta(minutes=minutes_ago),
        duration_ms=duration,
        amount=Decimal("10.00"),
        currency="EUR",
        error=error,
    )


LIMITED = ErrorInfo(reason=Reason.RATE_LIMIT, message="429", retriable=True, status_code=429)
DOWN = ErrorInfo(reason=Reason.DOWNSTREAM_UNAVAILABLE, message="503", retriable=True)


def seeded() -> LineageStore:
    store = LineageStore()
    store.open()
    events = [
        # ERP: two old successes (outside a 60 min window), then 5 failures in a row.
        call(1, System.ERP, Status.OK, minutes_ago=200, duration=50),
        call(2, System.ERP, Status.OK, minutes_ago=30, duration=100),
        *[
            call(10 + i, System.ERP, Status.RETRYING, minutes_ago=20 - i, error=DOWN)
            for i in range(5)
        ],
        # Billing: a 429, then the same step retried 3 s later and ok.
        call(20, System.BILLING, Status.RETRYING, minutes_ago=10, cid="c-b", error=LIMITED),
        call(21, System.BILLING, Status.OK, minutes_ago=10 - 0.05, cid="c-b"),
    ]
    store.write_batch(events)
    return store


def test_circuit_state_is_derived_from_failures_in_a_row() -> None:
    assert [circuit_state(n) for n in (0, 1, 4, 5, 50)] == [
        "closed",
        "degraded",
        "degraded",
        "open-like",
        "open-like",
    ]


def test_adapter_figures_per_system() -> None:
    store = seeded()
    out = store.read(
        lambda c: adapter_figures(c, now=NOW, window=timedelta(minutes=60), systems=NAMES)
    )
    by = {s["system"]: s for s in out["systems"]}
    erp, billing = by["erp"], by["billing"]
    assert erp["calls"] == 6  # the 200-minute-old success is outside the window
    assert erp["errors"] == 5
    assert erp["error_rate"] == pytest.approx(5 / 6)
    assert erp["errors_by_reason"] == {"downstream_unavailable": 5}
    assert erp["consecutive_failures"] == 5
    assert erp["circuit"] == "open-like"
    assert erp["last_success_at"] == "2026-11-26T11:30:00Z"
    assert erp["calls_per_minute"] == pytest.approx(0.1)
    assert erp["retrying_now"] == 5
    assert billing["rate_limited"] == 1
    assert billing["wait_after_429_ms"] == pytest.approx(3000.0)
    assert billing["circuit"] == "closed"
    assert billing["latency_ms"]["p50"] == pytest.approx(100.0)
    assert by["crm"]["calls"] == 0 and by["crm"]["error_rate"] is None
    assert "no circuit breaker" in out["circuit_note"]


def test_throughput_buckets_events_by_status() -> None:
    store = seeded()
    out = store.read(
        lambda c: throughput(c, now=NOW, window=timedelta(hours=1), bucket=timedelta(minutes=30))
    )
    assert out["bucket_seconds"] == 1800
    counts = {(p["at"], p["status"]): p["events"] for p in out["points"]}
    assert counts == {
        ("2026-11-26T11:30:00Z", "ok"): 2,
        ("2026-11-26T11:30:00Z", "retrying"): 6,
    }


@pytest.fixture
def client() -> Iterator[TestClient]:
    lineage = AsyncLineage(seeded())
    tokens = TokenStore()
    tokens.add("vic", Role.VIEWER, "tok-viewer")
    app = create_app(
        lineage=lineage,
        metrics=Metrics(CollectorRegistry()),
        tokens=tokens,
        routers=[explore_router(lineage, systems=SYSTEMS, clock=lambda: NOW)],
        require_auth_for_reads=True,
    )
    with TestClient(app) as test_client:
        yield test_client
    asyncio.run(lineage.close())


def test_router_serves_figures_to_a_viewer_and_refuses_without_a_token(
    client: TestClient,
) -> None:
    auth = {"Authorization": "Bearer tok-viewer"}
    answer = client.get("/api/v1/adapters", params={"window_minutes": 60}, headers=auth)
    assert answer.status_code == 200
    assert [s["system"] for s in answer.json()["systems"]] == ["crm", "erp", "billing", "support"]
    assert client.get("/api/v1/throughput", headers=auth).status_code == 200
    refused = client.get("/api/v1/adapters")
    assert refused.status_code == 401
    assert "bearer token is required" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/adapters", {"window_minutes": "0"}),
        ("/api/v1/adapters", {"window_minutes": "soon"}),
        ("/api/v1/throughput", {"bucket_minutes": "-5"}),
    ],
)
def test_bad_parameters_get_a_422_with_a_reason(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    answer = client.get(path, params=params, headers={"Authorization": "Bearer tok-viewer"})
    assert answer.status_code == 422
    assert isinstance(answer.json()["detail"], str) and answer.json()["detail"]
