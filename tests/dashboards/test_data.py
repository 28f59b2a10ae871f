"""``dashboards._data``: each function's route, the read cache, and writes emptying it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import streamlit as st

from dashboards import ControlApiError, ControlClient
from dashboards import _data as data

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A mock control API: answers with ``answer(request)`` and keeps every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Handler = lambda request: httpx.Response(200, json=self.body(request))

    @staticmethod
    def body(request: httpx.Request) -> dict[str, Any]:
        path = request.url.path
        if path.endswith("/sla"):
            return {"rules": [{"rule_id": "r1"}]}
        if path.endswith("/alerts"):
            return {"alerts": []}
        if path.endswith("/history"):
            return {"history": []}
        return {"items": [], "total": 0, "replay_id": "rp-1", "state": "pending"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    clients: dict[tuple[str, str | None], ControlClient] = {}

    def client_for(url: str, token: str | None) -> ControlClient:
        key = (url, token)
        if key not in clients:
            clients[key] = ControlClient(url, token, transport=httpx.MockTransport(recorder))
        return clients[key]

    monkeypatch.setattr(data, "client_for", client_for)
    monkeypatch.setenv("INTERLOCK_API_URL", "http://api.test")
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    yield recorder
    st.cache_data.clear()
    for client in clients.values():
        client.close()


def test_reads_are_cached_per_url_and_token(api: Recorder, monkeypatch: pytest.MonkeyPatch):
    assert data.sla_rules() == [{"rule_id": "r1"}]
    assert data.sla_rules() == [{"rule_id": "r1"}]
    assert api.paths() == ["GET /api/v1/sla"]
    monkeypatch.setenv("INTERLOCK_API_TOKEN", "other")
    data.sla_rules()
    assert len(api.requests) == 2
    assert api.requests[1].headers["Authorization"] == "Bearer other"


@pytest.mark.parametrize(
    ("read", "kwargs", "request_line"),
    [
        (data.whoami, {}, "GET /api/v1/whoami"),
        (data.systems, {}, None),
        (data.adapters, {"window_minutes": 15}, "GET /api/v1/adapters?window_minutes=15"),
        (data.throughput, {"hours": 6, "bucket_minutes": 10},
         "GET /api/v1/throughput?bucket_minutes=10&hours=6"),
        (data.alerts, {"include_resolved": True}, "GET /api/v1/alerts?include_resolved=true"),
        (data.dead_letter_groups, {"state": "open", "target": "erp"},
         "GET /api/v1/dead-letter-groups?state=open&target=erp"),
        (data.dead_letters, {"group": "g:1", "state": "open"},
         "GET /api/v1/dead-letters?group=g%3A1&limit=100&state=open"),
        (data.dead_letters, {"correlation_id": "c 1", "state": "all", "cursor": "x", "offset": 5},
         "GET /api/v1/dead-letters?correlation_id=c+1&cursor=x&limit=100&offset=5&state=all"),
        (data.replays, {"limit": 50}, "GET /api/v1/replays?limit=50"),
        (data.approvals, {}, "GET /api/v1/approvals"),
        (data.audit_verify, {}, "GET /api/v1/audit/verify"),
        (data.audit, {"action": "", "limit": 200}, "GET /api/v1/audit?limit=200"),
        (data.sla_report, {"period": "week"}, "GET /api/v1/reports/sla?period=week"),
    ],
)  # fmt: skip
def test_each_read_asks_its_route(api: Recorder, read, kwargs, request_line):
    if read is data.systems:
        api.answer = lambda request: httpx.Response(200, json={"systems": [{"name": "crm"}]})
        assert data.lanes() == ["crm"]
        assert api.paths() == ["GET /api/v1/systems"]
        return
    read(**kwargs)
    assert api.paths() == [request_line]


def test_ids_are_one_escaped_path_segment(api: Recorder):
    data.dead_letter("e/1?x")
    data.replay("rp 1")
    data.sla_history("rule/1", limit=5)
    assert api.paths() == [
        "GET /api/v1/dead-letters/e%2F1%3Fx",
        "GET /api/v1/replays/rp%201",
        "GET /api/v1/sla/rule%2F1/history?limit=5",
    ]


def test_an_answer_of_the_wrong_shape_is_an_api_error(api: Recorder):
    api.answer = lambda request: httpx.Response(200, json=["not", "an", "object"])
    with pytest.raises(ControlApiError, match="expected a JSON object"):
        data.whoami()
    api.answer = lambda request: httpx.Response(200, json={"rules": "none"})
    with pytest.raises(ControlApiError, match="rules"):
        data.sla_rules()


def test_optional_is_none_on_404_only(api: Recorder):
    api.answer = lambda request: httpx.Response(404, json={"detail": "Not Found"})
    assert data.optional(data.sla_rules) is None
    assert data.lanes() == []
    api.answer = lambda request: httpx.Response(500, json={"detail": "boom"})
    with pytest.raises(ControlApiError) as caught:
        data.optional(data.alerts)
    assert caught.value.status == 500


@pytest.mark.parametrize(
    ("write", "args", "kwargs", "request_line", "body"),
    [
        (data.request_replay, ({"event_id": "e1"},), {"reason": "fixed", "corrections": {"a": 1}},
         "POST /api/v1/replays",
         {"selection": {"event_id": "e1"}, "corrections": {"a": 1}, "dry_run": False,
          "reason": "fixed"}),
        (data.approve_replay, ("rp/1",), {"note": "ok"}, "POST /api/v1/replays/rp%2F1/approve",
         {"note": "ok"}),
        (data.reject_replay, ("rp-1",), {}, "POST /api/v1/replays/rp-1/reject", {"note": None}),
        (data.acknowledge_alert, ("al-1",), {"note": ""}, "POST /api/v1/alerts/al-1/ack",
         {"note": None}),
        (data.resolve_dead_letter, ("e1",), {"reason": "done by hand"},
         "POST /api/v1/dead-letters/e1/resolve", {"reason": "done by hand"}),
        (data.ignore_dead_letter, ("e1",), {"reason": "test order"},
         "POST /api/v1/dead-letters/e1/ignore", {"reason": "test order"}),
    ],
)  # fmt: skip
def test_a_write_posts_once_and_empties_the_read_cache(
    api: Recorder, write, args, kwargs, request_line, body
):
    data.sla_rules()
    write(*args, **kwargs)
    assert api.paths()[1:] == [request_line]
    assert json.loads(api.requests[1].content) == body
    data.sla_rules()  # read again: the write emptied the cache
    assert api.paths()[2:] == ["GET /api/v1/sla"]


def test_a_refused_write_raises_and_keeps_the_cache(api: Recorder):
    data.sla_rules()
    api.answer = lambda request: httpx.Response(403, json={"detail": "needs operator"})
    with pytest.raises(ControlApiError) as caught:
        data.acknowledge_alert("al-1")
    assert caught.value.status == 403
    data.sla_rules()
    assert api.paths() == ["GET /api/v1/sla", "POST /api/v1/alerts/al-1/ack"]


def test_a_dry_run_is_never_cached_and_keeps_the_cache(api: Recorder):
    data.sla_rules()
    data.plan_replay({"group": "g1"})
    data.plan_replay({"group": "g1"})
    data.sla_rules()
    assert api.paths() == ["GET /api/v1/sla", "POST /api/v1/replays", "POST /api/v1/replays"]
    assert json.loads(api.requests[1].content) == {"selection": {"group": "g1"}, "dry_run": True}
