"""Acknowledging an alert through the control API is a control action like any other: it
lands in the hash-chained audit trail (refusals too), and the Audit page shows entries with
readable UTC times and their details as labelled fields, not a raw JSON blob."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import streamlit as st
from stack_api import StackApi
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[2] / "dashboards" / "pages" / "33_Audit.py"
UTC_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture(scope="module")
def stack() -> Iterator[StackApi]:
    api = StackApi().start()
    yield api
    api.stop()


def _client(stack: StackApi, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _page(stack: StackApi, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("INTERLOCK_API_URL", stack.url)
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["api_token"] = "tok-viewer"
    return at.run()


def test_an_acknowledgement_is_audited_and_shown_readably(
    stack: StackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _client(stack, "tok-operator") as ops:
        alerts = ops.get("/api/v1/alerts").raise_for_status().json()["alerts"]
        assert alerts, "the seeded dead letter fires an alert"
        alert_id = alerts[0]["alert_id"]
        done = ops.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "on it"})
        assert done.status_code == 200, done.text
        again = ops.post(f"/api/v1/alerts/{alert_id}/ack", json={})
        assert again.status_code == 409
        trail = ops.get("/api/v1/audit", params={"action": "alert.acknowledge"}).json()
        verdict = ops.get("/api/v1/audit/verify").json()
    # Newest first: the refused second try, then the acknowledgement itself.
    refused, acked = trail["items"]
    assert (acked["actor"], acked["role"], acked["subject"]) == ("olga", "operator", alert_id)
    assert (acked["why"], acked["outcome"]) == ("on it", "acknowledged")
    assert acked["what"]["rule_id"] == alerts[0]["rule_id"]
    assert refused["outcome"].startswith("refused: ") and refused["subject"] == alert_id
    assert verdict["ok"] and verdict["entries"] >= 2

    at = _page(stack, monkeypatch)
    assert not at.exception
    table = at.dataframe[0].value
    assert "alert.acknowledge" in list(table["action"])
    assert all(UTC_TIME.fullmatch(str(t)) for t in table["at"])
    at.selectbox(key="au_action").select("alert.acknowledge").run()
    at.selectbox(key="au_entry").select(acked["seq"]).run()
    assert not at.exception
    assert not at.json  # no unlabelled blob
    heading = "\n".join(m.value for m in at.markdown)
    assert f"#{acked['seq']} alert.acknowledge" in heading and UTC_TIME.search(heading)
    details = at.dataframe[1].value
    fields = dict(zip(details["field"], details["value"], strict=True))
    assert fields["rule id"] == alerts[0]["rule_id"]
    assert UTC_TIME.fullmatch(fields["opened at"])
