"""ControlClient: the contract's calls, and every failure as a named ControlApiError."""

from __future__ import annotations

import json

import httpx
import pytest

import dashboards
from dashboards import ControlApiError, ControlApiUnavailable, ControlClient, api_url
from tracing import InterlockError, Reason


def test_exports_are_honest():
    assert sorted(dashboards.__all__) == sorted(
        name for name in vars(dashboards) if not name.startswith("_") and name != "annotations"
    )


def client_answering(handler) -> ControlClient:
    return ControlClient("http://api.test/", "s3cret", transport=httpx.MockTransport(handler))


def test_sends_token_and_only_the_filters_set():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "total": 0})

    client = client_answering(handler)
    assert client.transactions(state="failed", q="") == {"items": [], "total": 0}
    (request,) = seen
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.url.path == "/api/v1/transactions"
    assert dict(request.url.params) == {"limit": "50", "offset": "0", "state": "failed"}


def test_transaction_id_is_path_escaped():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"path": request.url.raw_path.decode()})

    assert client_answering(handler).transaction("a/b c")["path"] == (
        "/api/v1/transactions/a%2Fb%20c"
    )


def test_error_answer_carries_status_and_detail():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "no transaction cid-x"})

    with pytest.raises(ControlApiError) as caught:
        client_answering(handler).transaction("cid-x")
    assert caught.value.status == 404
    assert caught.value.detail == "no transaction cid-x"
    assert isinstance(caught.value, InterlockError)
    assert not isinstance(caught.value, ControlApiUnavailable)


def test_non_json_error_body_becomes_its_text():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="Bad Gateway from proxy")

    with pytest.raises(ControlApiError) as caught:
        client_answering(handler).stats()
    assert (caught.value.status, caught.value.detail) == (502, "Bad Gateway from proxy")


@pytest.mark.parametrize(
    ("body", "call"),
    [
        ("<html>not json</html>", "stats"),
        (json.dumps([1, 2]), "stats"),
        (json.dumps({"items": "nope", "total": 1}), "transactions"),
        (json.dumps({"items": []}), "dead_letters"),
    ],
)
def test_unreadable_answers_are_named_errors(body, call):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body, headers={"content-type": "application/json"})

    with pytest.raises(ControlApiError) as caught:
        getattr(client_answering(handler), call)()
    assert caught.value.status == 200


def test_degraded_health_is_an_answer_not_an_error():
    body = {"status": "degraded", "checks": {"lineage": "ok", "bus": "backlog 9000"}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json=body)

    assert client_answering(handler).health() == body


def test_post_json_and_get_bytes():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"echo": json.loads(request.content)})
        return httpx.Response(200, content=b"interlock_events_total 3\n")

    client = client_answering(handler)
    assert client.post_json("/api/v1/replays", {"dry_run": True}) == {"echo": {"dry_run": True}}
    assert client.get_bytes("/metrics") == b"interlock_events_total 3\n"


def test_refused_connection_is_unavailable(down_api):
    with (
        ControlClient(down_api, timeout=1.0) as client,
        pytest.raises(ControlApiUnavailable) as caught,
    ):
        client.stats()
    error = caught.value
    assert error.status == 0
    assert error.retriable and error.reason is Reason.DOWNSTREAM_UNAVAILABLE
    assert error.url == f"{down_api}/api/v1/stats"
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_timeout_is_unavailable():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ControlApiUnavailable, match="timed out"):
        client_answering(handler).stats()


def test_against_the_real_collector(sample_api):
    with ControlClient(sample_api) as client:
        assert client.health()["status"] == "ok"
        assert client.stats()["transactions_total"] == 3
        assert client.transactions(q="initech")["total"] == 1
        assert len(client.transaction("cid-done-001")["events"]) == 6
        assert client.dead_letters()["items"][0]["reason"] == "conflict"
        with pytest.raises(ControlApiError) as caught:
            client.transactions(state="lost")
        assert caught.value.status == 422
        assert "state" in caught.value.detail
        with pytest.raises(ControlApiError, match="limit"):
            client.transactions(limit=0)


def test_api_url_is_read_at_call_time(monkeypatch):
    monkeypatch.delenv("INTERLOCK_API_URL", raising=False)
    assert api_url() == "http://127.0.0.1:7400"
    monkeypatch.setenv("INTERLOCK_API_URL", "http://127.0.0.1:9999")
    assert api_url() == "http://127.0.0.1:9999"


def test_get_client_outside_a_session_uses_env_url_and_token(monkeypatch, sample_api):
    import streamlit as st

    from dashboards import get_client

    st.cache_resource.clear()
    monkeypatch.setenv("INTERLOCK_API_URL", sample_api)
    monkeypatch.setenv("INTERLOCK_API_TOKEN", "tok")
    client = get_client()
    assert client.base_url == sample_api
    assert client is get_client()  # one client per URL and token
    assert client._http.headers["Authorization"] == "Bearer tok"
    monkeypatch.setenv("INTERLOCK_API_URL", sample_api + "/")
    assert get_client() is not client
