"""The dead-letter, replay, approvals and audit pages against a real control API
(the collector's app with the replay router, under uvicorn on a free port)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

# The replay tests' server and event builders live beside those tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "replay"))
from replay_server import ReplayApiServer
from replay_support import failed_order

PAGES = Path(__file__).resolve().parents[2] / "dashboards" / "pages"


@pytest.fixture(scope="module")
def replay_api() -> Iterator[tuple[ReplayApiServer, str]]:
    trigger, dead = failed_order()
    server = ReplayApiServer().start([trigger, dead, *failed_order()])
    yield server, dead.event_id
    server.stop()


def page(
    name: str, server: ReplayApiServer, token: str | None, monkeypatch: pytest.MonkeyPatch
) -> AppTest:
    monkeypatch.setenv("INTERLOCK_API_URL", server.url)
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGES / name), default_timeout=60)
    if token:
        at.session_state["api_token"] = token
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.success]
    parts += (
        [m.value for m in at.info] + [m.value for m in at.error] + [m.value for m in at.caption]
    )
    return "\n".join(str(p) for p in parts)


def test_viewer_sees_groups_but_no_actions(replay_api, monkeypatch) -> None:
    server, _ = replay_api
    at = page("30_Dead_letters.py", server, "tok-viewer", monkeypatch)
    assert not at.exception
    assert "2 downstream_unavailable at erp.order.create" in texts(at)
    assert "worth USD 796.00" in texts(at)
    assert not at.button  # the ignore form is hidden from a viewer
    replay = page("31_Replay.py", server, "tok-viewer", monkeypatch)
    assert not replay.exception
    assert [b.label for b in replay.button] == []
    assert "requesting one needs the operator role" in texts(replay)


def test_operator_dry_runs_and_requests_then_an_approver_approves(replay_api, monkeypatch) -> None:
    server, event_id = replay_api
    at = page("31_Replay.py", server, "tok-operator", monkeypatch)
    assert not at.exception
    at.text_input(key="rp_value").input(event_id).run()
    at.button(key="rp_dry").click().run()
    assert not at.exception
    assert "1 to re-deliver (erp 1), 0 skipped" in texts(at)
    at.text_input(key="rp_reason").input("ERP back after the 02:10 outage").run()
    at.button(key="rp_request").click().run()
    assert "is pending_approval" in texts(at)

    as_operator = page("32_Approvals.py", server, "tok-operator", monkeypatch)
    assert "Approving needs the approver role" in texts(as_operator)
    assert not as_operator.button

    approvals = page("32_Approvals.py", server, "tok-approver", monkeypatch)
    assert not approvals.exception
    approvals.button(key="ap_approve").click().run()
    assert not approvals.exception
    assert "Approved; replay" in texts(approvals)

    audit = page("33_Audit.py", server, "tok-viewer", monkeypatch)
    assert not audit.exception
    assert "Chain intact" in texts(audit)
    assert any(row == "replay.approve" for row in audit.dataframe[0].value["action"])
