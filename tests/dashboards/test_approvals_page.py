"""The approvals queue after a decision: an approved replay leaves the queue at once (no
live Approve / Reject for it), a second approve through the API is a 409 problem, and the
queue shows money and times readably. Against a real control API on loopback."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "replay"))
from replay_server import ReplayApiServer
from replay_support import failed_order

PAGE = Path(__file__).resolve().parents[2] / "dashboards" / "pages" / "32_Approvals.py"


@pytest.fixture
def server() -> Iterator[tuple[ReplayApiServer, list[str]]]:
    first, second = failed_order(), failed_order()
    srv = ReplayApiServer().start([*first, *second])
    yield srv, [first[1].event_id, second[1].event_id]
    srv.stop()


def _api(srv: ReplayApiServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _request(srv: ReplayApiServer, event_id: str) -> str:
    with _api(srv, "tok-operator") as c:
        r = c.post(
            "/api/v1/replays",
            json={"selection": {"event_id": event_id}, "dry_run": False, "reason": "ERP back"},
        )
    assert r.status_code == 202, r.text
    replay_id: str = r.json()["replay_id"]
    return replay_id


def _page(srv: ReplayApiServer, token: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("INTERLOCK_API_URL", srv.url)
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["api_token"] = token
    return at.run()


def _queue_ids(at: AppTest) -> list[Any]:
    if not at.dataframe:
        return []
    return list(at.dataframe[0].value["replay"])


def test_an_approved_replay_leaves_the_queue_and_cannot_be_approved_twice(
    server: tuple[ReplayApiServer, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, events = server
    first, second = _request(srv, events[0]), _request(srv, events[1])

    at = _page(srv, "tok-approver", monkeypatch)
    assert not at.exception
    assert sorted(_queue_ids(at)) == sorted([first, second])
    at.selectbox(key="ap_pick").select(first).run()
    at.button(key="ap_approve").click().run()
    assert not at.exception
    assert f"Approved; replay {first}" in "\n".join(m.value for m in at.success)
    # The page drawn after the click no longer offers the approved replay.
    assert _queue_ids(at) == [second]
    assert at.selectbox(key="ap_pick").options == [second]

    at.button(key="ap_approve").click().run()
    assert not at.exception
    assert not at.dataframe and not at.button
    assert "Nothing waits for approval." in [m.value for m in at.success]

    # A second approve (here by another approver) is refused with a problem body.
    with _api(srv, "tok-approver2") as c:
        again = c.post(f"/api/v1/replays/{first}/approve", json={})
        queue = c.get("/api/v1/approvals").json()
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    body = again.json()
    assert body["status"] == 409 and "not pending approval" in body["detail"]
    assert body["instance"] == f"/api/v1/replays/{first}/approve"
    assert queue["items"] == []


def test_the_queue_shows_money_and_times_readably(
    server: tuple[ReplayApiServer, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, events = server
    _request(srv, events[0])
    at = _page(srv, "tok-approver", monkeypatch)
    assert not at.exception
    row = at.dataframe[0].value.iloc[0]
    assert row["value"] == "USD 398.00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", str(row["requested at"]))
