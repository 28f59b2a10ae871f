"""The control API through httpx's ASGI transport: exact JSON, errors, OpenAPI, /metrics."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest
from _collector_events import eid, make_event
from fastapi import APIRouter, Depends
from prometheus_client import CollectorRegistry

from collector import Principal, Role, TokenStore
from collector.api import ControlRoute, Metrics, create_app, require_role
from collector.lineage import AsyncLineage, LineageStore
from tracing import SCHEMA_VERSION, Reason, Status, System


@pytest.fixture
async def lineage() -> AsyncIterator[AsyncLineage]:
    lin = AsyncLineage(LineageStore())
    await lin.open()
    yield lin
    await lin.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def tokens() -> TokenStore:
    store = TokenStore()
    store.add("ops", Role.OPERATOR, "op-token")
    store.add("view", Role.VIEWER, "view-token")
    return store


def _client(app: object, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://test",
        headers=headers,
    )


@pytest.fixture
async def client(
    lineage: AsyncLineage, metrics: Metrics, tokens: TokenStore
) -> AsyncIterator[httpx.AsyncClient]:
    async def health() -> dict[str, str]:
        return {"bus": "ok"}

    app = create_app(lineage=lineage, metrics=metrics, tokens=tokens, health=health)
    async with _client(app, "view-token") as c:
        yield c


async def _seed(lineage: AsyncLineage) -> None:
    await lineage.write_batch(
        [
            make_event(
                "c1",
                n=1,
                kind="opportunity.closed_won",
                source=System.CRM,
                entity_type="opportunity",
                entity_id="006A",
                amount="1250",
                currency="USD",
                customer_id="001A",
                payload={"customer": {"name": "Acme"}},
            ),
            make_event("c1", n=2, seconds=2, kind="invoice.posted", causation_id=eid(1)),
            make_event(
                "c2",
                n=3,
                seconds=5,
                status=Status.DEAD_LETTERED,
                reason=Reason.CONFLICT,
                amount="10",
                currency="EUR",
                target=System.ERP,
            ),
        ]
    )


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"lineage": "ok", "bus": "ok"}}


async def test_healthz_degraded(
    lineage: AsyncLineage, metrics: Metrics, tokens: TokenStore
) -> None:
    async def health() -> dict[str, str]:
        return {"bus": "down: BusError"}

    async with _client(
        create_app(lineage=lineage, metrics=metrics, tokens=tokens, health=health)
    ) as c:
        r = await c.get("/healthz")
    assert r.json() == {"status": "degraded", "checks": {"lineage": "ok", "bus": "down: BusError"}}


async def test_healthz_reports_a_closed_store(metrics: Metrics, tokens: TokenStore) -> None:
    store = LineageStore()  # never opened
    async with _client(
        create_app(lineage=AsyncLineage(store), metrics=metrics, tokens=tokens), "view-token"
    ) as c:
        r = await c.get("/healthz")
        assert r.json() == {
            "status": "degraded",
            "checks": {"lineage": "error: the lineage store is not open"},
        }
        r = await c.get("/api/v1/stats")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "5"
        # The store's own text goes to the log, not to the caller.
        assert r.json() == {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "the lineage store is unavailable; retry later",
            "instance": "/api/v1/stats",
        }


async def test_stats(client: httpx.AsyncClient, lineage: AsyncLineage, metrics: Metrics) -> None:
    await _seed(lineage)
    metrics.set_backlog_source(lambda: 17)
    r = await client.get("/api/v1/stats")
    assert r.status_code == 200
    assert r.json() == {
        "events_total": 3,
        "transactions_total": 2,
        "transactions_by_state": {
            "in_progress": 0,
            "completed": 1,
            "on_hold": 0,
            "failed": 0,
            "dead_lettered": 1,
            "stalled": 0,
        },
        "dead_letters_open": 1,
        "duplicates_dropped": 0,
        "events_by_system": {"crm": 1, "erp": 2},
        "events_by_status": {"dead_lettered": 1, "ok": 2},
        "value_by_state": {"completed": "1250.00", "dead_lettered": "10.00"},
        "bus_backlog": 17,
        "last_event_at": "2026-03-01T09:00:05Z",
    }


async def test_list_transactions(client: httpx.AsyncClient, lineage: AsyncLineage) -> None:
    await _seed(lineage)
    r = await client.get("/api/v1/transactions", params={"limit": "1", "state": "", "q": ""})
    assert r.status_code == 200
    assert r.json() == {
        "items": [
            {
                "correlation_id": "c2",
                "order_ref": "SO-1",
                "customer_id": None,
                "customer_name": None,
                "amount": "10.00",
                "currency": "EUR",
                "state": "dead_lettered",
                "started_at": "2026-03-01T09:00:05Z",
                "updated_at": "2026-03-01T09:00:05Z",
                "last_kind": "order.created",
                "last_system": "erp",
                "last_status": "dead_lettered",
                "event_count": 1,
                "failed_count": 0,
                "dead_letter_count": 1,
                "waiting_step": None,
                "waiting_since": None,
                "due_at": None,
            }
        ],
        "total": 2,
    }
    r = await client.get("/api/v1/transactions", params={"q": "acme", "state": "completed"})
    body = r.json()
    assert body["total"] == 1
    assert body["items"][0]["correlation_id"] == "c1"
    assert body["items"][0]["order_ref"] == "006A"
    r = await client.get("/api/v1/transactions", params={"offset": "5"})
    assert r.json() == {"items": [], "total": 2}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": "0"}, "query.limit: Input should be greater than or equal to 1"),
        (
            {"limit": "ten"},
            "query.limit: Input should be a valid integer, unable to parse string as an integer",
        ),
        ({"offset": "-1"}, "query.offset: Input should be greater than or equal to 0"),
        ({"offset": "9" * 27}, "query.offset: Input should be less than or equal to 2147483647"),
        (
            {"state": "lost"},
            "unknown state 'lost'; expected one of in_progress, completed, on_hold, failed, "
            "dead_lettered, stalled or all",
        ),
    ],
)
async def test_list_transactions_bad_params(
    client: httpx.AsyncClient, params: dict[str, str], detail: str
) -> None:
    r = await client.get("/api/v1/transactions", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == detail


async def test_get_transaction(client: httpx.AsyncClient, lineage: AsyncLineage) -> None:
    await _seed(lineage)
    r = await client.get("/api/v1/transactions/c1")
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "completed"
    assert body["customer_name"] == "Acme"
    assert [e["event_id"] for e in body["events"]] == [eid(1), eid(2)]
    second = body["events"][1]
    assert second == {
        "event_id": eid(2),
        "correlation_id": "c1",
        "causation_id": eid(1),
        "trace_id": "0" * 31 + "1",
        "span_id": "0" * 15 + "1",
        "trace_flags": None,
        "tracestate": "",
        "idempotency_key": "idem-2",
        "source": "erp",
        "target": None,
        "kind": "invoice.posted",
        "step": "erp.create_order",
        "entity_type": "sales_order",
        "entity_id": "SO-1",
        "status": "ok",
        "attempt": 1,
        "event_time": "2026-03-01T09:00:02Z",
        "recorded_at": "2026-03-01T09:00:02Z",
        "duration_ms": None,
        "amount": None,
        "currency": None,
        "customer_id": None,
        "schema_version": SCHEMA_VERSION,
        "payload": {},
        "error": None,
        "replay_of": None,
        "replay_id": None,
        "since_cause_ms": 2000.0,
    }
    r = await client.get("/api/v1/transactions/nope")
    assert r.status_code == 404
    assert r.json()["detail"] == "no transaction nope"


async def test_dead_letters(client: httpx.AsyncClient, lineage: AsyncLineage) -> None:
    await _seed(lineage)
    r = await client.get("/api/v1/dead-letters")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1
    item = body["items"][0]
    assert isinstance(item.pop("state_changed_at"), str)
    assert item == {
        "event_id": eid(3),
        "correlation_id": "c2",
        "step": "erp.create_order",
        "kind": "order.created",
        "target": "erp",
        "reason": "conflict",
        "error_message": "credit limit exceeded",
        "attempts": 1,
        "amount": "10.00",
        "currency": "EUR",
        "customer_id": None,
        "first_failed_at": "2026-03-01T09:00:05Z",
        "last_failed_at": "2026-03-01T09:00:05Z",
        "state": "open",
        "state_changed_by": "collector",
        "state_note": None,
        "resolved_by_event": None,
    }
    assert body["next_cursor"] is None
    filtered = await client.get("/api/v1/dead-letters", params={"reason": "validation", "step": ""})
    assert filtered.json() == {"items": [], "total": 0, "next_cursor": None}
    assert (await client.get("/api/v1/dead-letters", params={"state": "resolved"})).json() == {
        "items": [],
        "total": 0,
        "next_cursor": None,
    }
    assert (await client.get("/api/v1/dead-letters", params={"state": "all"})).json()["total"] == 1
    bad = await client.get("/api/v1/dead-letters", params={"state": "gone"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("unknown state 'gone'")


@pytest.mark.parametrize(
    ("params", "total"),
    [
        ({"state": "open,resolved"}, 1),
        ({"state": "resolved,ignored"}, 0),
        ({"state": ""}, 1),
        ({"target": "erp", "reason": "conflict"}, 1),
        ({"target": "billing"}, 0),
        ({"correlation_id": "c2"}, 1),
        ({"correlation_id": "c1"}, 0),
        ({"group": "conflict:erp.create_order"}, 1),
        ({"group": "mapping:erp.create_order"}, 0),
        ({"since": "2026-03-01T09:00:05Z"}, 1),
        ({"until": "2026-03-01T09:00:05Z"}, 0),
    ],
)
async def test_the_dead_letter_list_takes_every_filter(
    client: httpx.AsyncClient, lineage: AsyncLineage, params: dict[str, str], total: int
) -> None:
    await _seed(lineage)
    r = await client.get("/api/v1/dead-letters", params=params)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == total
    # The replay route it replaced is an alias with the same answer.
    assert (await client.get("/api/v1/dead-letters/search", params=params)).json() == r.json()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"reason": "sleepy"}, "reason"),
        ({"target": "Main Frame"}, "target"),
        ({"state": "open,gone"}, "state"),
        ({"sla_rule": "nope"}, "no SLA rule 'nope'"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_a_bad_dead_letter_filter_is_a_422(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    r = await client.get("/api/v1/dead-letters", params=params)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


async def test_the_dead_letter_list_pages_by_cursor(
    client: httpx.AsyncClient, lineage: AsyncLineage
) -> None:
    await lineage.write_batch(
        [make_event(f"c{i}", n=10 + i, seconds=i, status=Status.DEAD_LETTERED) for i in range(5)]
    )
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = (await client.get("/api/v1/dead-letters", params=params)).json()
        assert page["total"] == 5
        seen += [item["event_id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert seen == [eid(10 + i) for i in reversed(range(5))]


async def test_openapi_lists_the_paths_and_routers_are_included(
    lineage: AsyncLineage, metrics: Metrics, tokens: TokenStore
) -> None:
    control = APIRouter(route_class=ControlRoute)

    operator = Depends(require_role(Role.OPERATOR))

    @control.post("/api/v1/control/ping")
    async def ping(who: Principal = operator) -> dict[str, str]:
        return {"pong": who.name}

    app = create_app(lineage=lineage, metrics=metrics, tokens=tokens, routers=[control])
    assert app.state.tokens is tokens
    assert app.state.lineage is lineage
    assert app.state.metrics is metrics
    async with _client(app) as c:
        doc = (await c.get("/openapi.json")).json()
        assert doc["info"]["title"] == "Interlock control API"
        assert {
            "/healthz",
            "/metrics",
            "/api/v1/stats",
            "/api/v1/transactions",
            "/api/v1/transactions/{correlation_id}",
            "/api/v1/dead-letters",
            "/api/v1/control/ping",
        } <= set(doc["paths"])
        assert (await c.post("/api/v1/control/ping")).status_code == 401
        r = await c.post("/api/v1/control/ping", headers={"Authorization": "Bearer view-token"})
        assert r.status_code == 403
        assert r.json()["detail"] == "role viewer may not do this; it needs operator"
        r = await c.post("/api/v1/control/ping", headers={"Authorization": "Bearer op-token"})
        assert r.json() == {"pong": "ops"}


async def test_reads_can_require_a_token(
    lineage: AsyncLineage, metrics: Metrics, tokens: TokenStore
) -> None:
    app = create_app(lineage=lineage, metrics=metrics, tokens=tokens, require_auth_for_reads=True)
    async with _client(app) as c:
        r = await c.get("/api/v1/stats")
        assert r.status_code == 401
        assert r.json()["detail"] == "a bearer token is required for this action"
        ok = await c.get("/api/v1/stats", headers={"Authorization": "Bearer view-token"})
        assert ok.status_code == 200
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200


async def test_reads_need_a_token_by_default_and_refuse_unknown_tokens(
    lineage: AsyncLineage, metrics: Metrics, tokens: TokenStore
) -> None:
    async with _client(create_app(lineage=lineage, metrics=metrics, tokens=tokens)) as c:
        r = await c.get("/api/v1/dead-letters")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        r = await c.get("/api/v1/stats", headers={"Authorization": "Bearer forged"})
        assert r.status_code == 401
        assert r.json()["detail"] == "the bearer token is not known"
        r = await c.get("/api/v1/stats", headers={"Authorization": "Bearer view-token"})
        assert r.status_code == 200


async def test_reads_can_be_opened_to_the_anonymous_viewer(
    lineage: AsyncLineage, metrics: Metrics, tokens: TokenStore
) -> None:
    app = create_app(lineage=lineage, metrics=metrics, tokens=tokens, require_auth_for_reads=False)
    async with _client(app) as c:
        assert (await c.get("/api/v1/dead-letters")).status_code == 200
        r = await c.get("/api/v1/stats", headers={"Authorization": "Bearer forged"})
        assert r.status_code == 401


async def _metrics_text(client: httpx.AsyncClient, lineage: AsyncLineage, metrics: Metrics) -> str:
    from collector.lineage import Collector

    collector = Collector(lineage, metrics, batch_size=10, flush_interval=60)
    for event in [
        make_event("m", n=1, duration_ms=250.0, source=System.CRM, kind="opportunity.closed_won"),
        make_event("m", n=1),
        make_event("m", n=2, seconds=1, status=Status.DEAD_LETTERED, duration_ms=1500.0),
    ]:
        await collector.ingest(event)
    await collector.ingest_raw(b"{")
    await collector.flush()
    metrics.webhook_rejected.labels(system="billing", reason="signature").inc()
    metrics.set_backlog_source(lambda: 3)
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_metrics_exact_values(
    client: httpx.AsyncClient, lineage: AsyncLineage, metrics: Metrics
) -> None:
    text = await _metrics_text(client, lineage, metrics)
    get = metrics.registry.get_sample_value
    assert (
        get(
            "interlock_events_total",
            {"system": "crm", "kind": "opportunity.closed_won", "status": "ok"},
        )
        == 1.0
    )
    assert (
        get(
            "interlock_events_total",
            {"system": "erp", "kind": "order.created", "status": "dead_lettered"},
        )
        == 1.0
    )
    assert (
        get(
            "interlock_events_total",
            {"system": "interlock", "kind": "event.invalid", "status": "dead_lettered"},
        )
        == 1.0
    )
    assert get("interlock_duplicates_dropped_total") == 1.0
    assert get("interlock_dead_letters_open") == 2.0
    assert get("interlock_invalid_events_total", {"reason": "json"}) == 1.0
    assert (
        get("interlock_webhook_rejected_total", {"system": "billing", "reason": "signature"}) == 1.0
    )
    assert get("interlock_step_duration_seconds_count", {"step": "erp.create_order"}) == 2.0
    assert get("interlock_step_duration_seconds_sum", {"step": "erp.create_order"}) == 1.75
    assert (
        get("interlock_step_duration_seconds_bucket", {"step": "erp.create_order", "le": "0.25"})
        == 1.0
    )
    assert get("interlock_ingest_batch_size_count") == 1.0
    assert get("interlock_ingest_batch_size_sum") == 4.0
    assert get("interlock_lineage_commit_seconds_count") == 1.0
    assert get("interlock_bus_backlog") == 3.0
    assert "interlock_bus_backlog 3.0" in text
    assert 'interlock_invalid_events_total{reason="json"} 1.0' in text


async def test_promtool_accepts_the_exposition(
    client: httpx.AsyncClient, lineage: AsyncLineage, metrics: Metrics
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install -y prometheus)")
    text = await _metrics_text(client, lineage, metrics)
    done = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


async def test_healthz_keeps_its_own_lineage_check_and_survives_a_broken_callback(
    metrics: Metrics, tokens: TokenStore
) -> None:
    async def health() -> dict[str, str]:
        return {"lineage": "ok", "bus": "ok"}

    async def broken() -> dict[str, str]:
        raise RuntimeError("bug")

    closed = AsyncLineage(LineageStore())  # never opened
    async with _client(
        create_app(lineage=closed, metrics=metrics, tokens=tokens, health=health)
    ) as c:
        body = (await c.get("/healthz")).json()
    assert body["status"] == "degraded"
    assert body["checks"]["lineage"].startswith("error:")
    async with _client(
        create_app(lineage=closed, metrics=metrics, tokens=tokens, health=broken)
    ) as c:
        body = (await c.get("/healthz")).json()
    assert body["checks"]["health"] == "error: RuntimeError"
