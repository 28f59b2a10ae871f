"""The replay control API on the collector's real app: roles, four eyes, exact answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from replay_support import auto_outcomes, failed_order, make_order, seed

from collector import Role, TokenStore
from collector.api import Metrics, create_app
from replay import ReplayService, replay_router
from tracing import Reason

TOKENS = {
    "viewer": ("vic", Role.VIEWER),
    "operator": ("olga", Role.OPERATOR),
    "approver": ("anna", Role.APPROVER),
    "approver2": ("arne", Role.APPROVER),
    "admin": ("ada", Role.ADMIN),
}


def token_store() -> TokenStore:
    store = TokenStore()
    for token, (name, role) in TOKENS.items():
        store.add(name, role, f"tok-{token}")
    return store


def auth(who: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{who}"} if who else {}


@pytest.fixture
async def service(make_service: Any) -> ReplayService:
    return await make_service()  # type: ignore[no-any-return]


@pytest.fixture
async def client(lineage: Any, service: ReplayService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        lineage=lineage,
        metrics=Metrics(CollectorRegistry()),
        tokens=token_store(),
        routers=[replay_router(service)],
    )
    transport = httpx.ASGITransport(app=app)
    # Reads send the viewer's token (reads need one); actions pass their own.
    async with httpx.AsyncClient(
        transport=transport, base_url="http://replay.test", headers=auth("viewer")
    ) as http:
        yield http


async def _anonymous(
    client: httpx.AsyncClient, method: str, path: str, **kw: Any
) -> httpx.Response:
    """``client``'s request without its default token."""
    request = client.build_request(method, path, **kw)
    del request.headers["authorization"]
    return await client.send(request)


async def _request_replay(client: httpx.AsyncClient, event_id: str, who: str = "operator") -> Any:
    response = await client.post(
        "/api/v1/replays",
        json={"selection": {"event_id": event_id}, "dry_run": False, "reason": "ERP is back"},
        headers=auth(who),
    )
    assert response.status_code == 202, response.text
    return response.json()


async def test_groups_and_dead_letter_views(lineage, client) -> None:
    trigger, dead = failed_order(make_order(price="650000"))
    await seed(lineage, (trigger, dead), failed_order(reason=Reason.MAPPING))
    groups = (await client.get("/api/v1/dead-letter-groups")).json()
    assert groups["total"] == 2
    top = groups["items"][0]
    assert top["group_id"] == "downstream_unavailable:erp.order.create"
    assert top["value_by_currency"] == {"USD": "1300000.00"}
    assert top["label"].endswith("worth USD 1.3M")
    search = await client.get("/api/v1/dead-letters", params={"reason": "mapping", "target": "erp"})
    assert search.json()["total"] == 1
    # The old replay route is an alias of the one list.
    alias = await client.get(
        "/api/v1/dead-letters/search", params={"reason": "mapping", "target": "erp"}
    )
    assert alias.json() == search.json()
    # Any system a plug-in adds is a target to select by; a name no system can have is not.
    other = await client.get("/api/v1/dead-letters", params={"target": "servicenow"})
    assert other.status_code == 200 and other.json()["total"] == 0
    wrong = await client.get("/api/v1/dead-letters", params={"target": "Service Now"})
    assert wrong.status_code == 422
    one = (await client.get(f"/api/v1/dead-letters/{dead.event_id}")).json()
    assert one["amount"] == "1300000.00" and one["currency"] == "USD"
    assert one["input_event"]["payload"]["order"]["customer"]["email"] == "a***@acme.test"
    missing = await client.get("/api/v1/dead-letters/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "no dead letter nope"
    bad = await client.get("/api/v1/dead-letter-groups", params={"state": "sleeping"})
    assert bad.status_code == 422


async def test_dry_run_is_the_default(lineage, client) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    response = await client.post(
        "/api/v1/replays",
        json={"selection": {"event_id": dead.event_id}},
        headers=auth("operator"),
    )
    assert response.status_code == 200
    plan = response.json()
    assert plan["dry_run"] is True and plan["to_deliver"] == 1 and plan["needs_approval"] is True
    assert plan["items"][0]["idempotency_key"] == trigger.idempotency_key
    assert (await client.get("/api/v1/replays")).json() == {"items": [], "total": 0}


async def test_each_role_is_refused_every_action_above_it(lineage, client) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    replay = await _request_replay(client, dead.event_id, "admin")
    rid = replay["replay_id"]
    actions: list[tuple[Role, str, str, dict[str, Any] | None]] = [
        (Role.VIEWER, "GET", "/api/v1/dead-letter-groups", None),
        (Role.VIEWER, "GET", f"/api/v1/dead-letters/{dead.event_id}", None),
        (Role.VIEWER, "GET", f"/api/v1/replays/{rid}", None),
        (Role.VIEWER, "GET", "/api/v1/approvals", None),
        (Role.VIEWER, "GET", "/api/v1/audit", None),
        (Role.VIEWER, "GET", "/api/v1/audit/verify", None),
        (Role.OPERATOR, "POST", "/api/v1/replays", {"selection": {"event_id": dead.event_id}}),
        (Role.OPERATOR, "POST", f"/api/v1/dead-letters/{dead.event_id}/ignore", {"reason": "x"}),
        (Role.OPERATOR, "POST", f"/api/v1/dead-letters/{dead.event_id}/resolve", {"reason": "x"}),
        (Role.APPROVER, "POST", f"/api/v1/replays/{rid}/approve", {}),
        (Role.APPROVER, "POST", f"/api/v1/replays/{rid}/reject", {}),
    ]
    for who in ("viewer", "operator", "approver"):
        role = TOKENS[who][1]
        for needed, method, path, body in actions:
            if needed <= role:
                continue
            response = await client.request(method, path, json=body, headers=auth(who))
            assert response.status_code == 403, (who, path)
            assert response.json()["detail"].startswith(f"role {who} may not do this")
    # No token: neither reads nor actions; a bad token never.
    assert (await _anonymous(client, "GET", "/api/v1/audit")).status_code == 401
    anonymous = await _anonymous(client, "POST", f"/api/v1/replays/{rid}/approve", json={})
    assert anonymous.status_code == 401
    forged = await client.get("/api/v1/audit", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    # Nothing was changed by the refused calls.
    assert (await client.get(f"/api/v1/replays/{rid}")).json()["state"] == "pending_approval"
    assert (await client.get(f"/api/v1/dead-letters/{dead.event_id}")).json()["state"] == (
        "replay_requested"
    )


async def test_reads_need_a_token_unless_opened(lineage, service) -> None:
    for open_reads in (False, True):
        app = create_app(
            lineage=lineage,
            metrics=Metrics(CollectorRegistry()),
            tokens=token_store(),
            routers=[replay_router(service)],
            **({"require_auth_for_reads": False} if open_reads else {}),
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://replay.test"
        ) as http:
            anonymous = await http.get("/api/v1/audit")
            assert anonymous.status_code == (200 if open_reads else 401)
            assert (await http.get("/api/v1/audit", headers=auth("viewer"))).status_code == 200
            approve = await http.post("/api/v1/replays/r1/approve", json={})
            assert approve.status_code == 401


async def test_four_eyes_over_http(lineage, bus, client, service) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    auto_outcomes(bus)
    replay = await _request_replay(client, dead.event_id, "approver")
    rid = replay["replay_id"]
    assert replay["state"] == "pending_approval" and replay["requested_by"] == "anna"
    queue = (await client.get("/api/v1/approvals")).json()
    assert [r["replay_id"] for r in queue["items"]] == [rid]
    own = await client.post(f"/api/v1/replays/{rid}/approve", json={}, headers=auth("approver"))
    assert own.status_code == 403
    assert own.json()["detail"] == "the requester cannot approve their own replay"
    ok = await client.post(
        f"/api/v1/replays/{rid}/approve", json={"note": "looks right"}, headers=auth("approver2")
    )
    assert ok.status_code == 200 and ok.json()["decided_by"] == "arne"
    done = await asyncio.wait_for(service.wait(rid), 10)
    assert done["state"] == "completed"
    progress = (await client.get(f"/api/v1/replays/{rid}")).json()
    assert progress["items"][0]["state"] == "succeeded"
    again = await client.post(f"/api/v1/replays/{rid}/approve", json={}, headers=auth("admin"))
    assert again.status_code == 409
    trail = [
        (e["action"], e["actor"], e["outcome"])
        for e in (await client.get("/api/v1/audit")).json()["items"]
    ]
    assert trail == [
        ("replay.approve", "ada", "refused: replay is completed, not pending approval"),
        ("replay.execute", "interlock", "completed"),
        ("replay.approve", "arne", "approved"),
        ("replay.approve", "anna", "refused: the requester cannot approve their own replay"),
        ("replay.request", "anna", "pending_approval"),
    ]


async def test_an_invalid_edit_is_refused(lineage, client) -> None:
    trigger, dead = failed_order(reason=Reason.MAPPING)
    await seed(lineage, (trigger, dead))
    for corrections in (
        {"patch": {"order": {"lines": []}}},
        {"patch": {"order": {"customer": {"name": ""}}}},
        {"currency": "dollars"},
        {"sku_map": {"NOT-IN-ORDER": "PLAT-PRO"}},
        {"unknown": 1},
    ):
        response = await client.post(
            "/api/v1/replays",
            json={
                "selection": {"event_id": dead.event_id},
                "dry_run": False,
                "reason": "fix",
                "corrections": corrections,
            },
            headers=auth("operator"),
        )
        assert response.status_code == 422, corrections
        assert response.json()["detail"]
    assert (await client.get("/api/v1/replays")).json()["total"] == 0
    assert (await client.get(f"/api/v1/dead-letters/{dead.event_id}")).json()["state"] == "open"


async def test_ignore_over_http_is_audited(lineage, client) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    response = await client.post(
        f"/api/v1/dead-letters/{dead.event_id}/ignore",
        json={"reason": "duplicate deal, closed in CRM"},
        headers=auth("operator"),
    )
    assert response.status_code == 200 and response.json()["state"] == "ignored"
    [entry] = (await client.get("/api/v1/audit")).json()["items"]
    assert entry["actor"] == "olga" and entry["action"] == "dead_letter.ignore"
    assert entry["why"] == "duplicate deal, closed in CRM" and entry["outcome"] == "ignored"
    assert entry["subject"] == dead.event_id and entry["what"]["amount"] == "398.00"
    empty = await client.post(
        f"/api/v1/dead-letters/{dead.event_id}/ignore", json={"reason": ""}, headers=auth("admin")
    )
    assert empty.status_code == 422
