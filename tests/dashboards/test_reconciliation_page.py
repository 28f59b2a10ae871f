"""The Reconciliation page on a real control API (the one builder, the shipped
plug-ins and reconciliation over holdings a test hands in): runs and discrepancies
readable, an operator runs one and explains a discrepancy, a viewer only reads."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import streamlit as st
from _hosts import serve
from streamlit.testing.v1 import AppTest

from adapters.reconcile import Holdings, Period
from adapters.reconcile.plugin import ReconcilePlugin
from collector.host import InterlockThread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "replay"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reconcile"))
from replay_server import TOKENS
from test_compare import sale, whole

PAGE = Path(__file__).resolve().parents[2] / "dashboards" / "pages" / "34_Reconciliation.py"


async def _held(period: Period) -> Holdings:
    """A deal the ERP holds twice, and one it never got."""
    h = whole("006A", "1000.00")
    other = whole("006B", "250.00")
    h.deals += other.deals
    h.subscriptions += other.subscriptions
    h.entitlements |= other.entitlements
    h.parties |= other.parties
    h.billing_customers |= other.billing_customers
    h.organizations |= other.organizations
    h.sales.append(sale("006A", "990.00", id=2))
    return h


@pytest.fixture
def server() -> Iterator[InterlockThread]:
    with tempfile.TemporaryDirectory(prefix="recon-page-") as workdir:
        thread = serve(
            [],
            TOKENS,
            workdir=Path(workdir),
            sla=False,
            extra=[ReconcilePlugin(read=_held, scheduled=False)],
        )
        try:
            yield thread
        finally:
            thread.stop()


def _page(url: str, token: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("INTERLOCK_API_URL", url)
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["api_token"] = token
    return at.run()


def _wait_done(url: str) -> None:
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer tok-viewer"}) as c:
        while time.monotonic() < deadline:
            runs = c.get("/api/v1/reconciliations").json()["items"]
            if runs and all(r["status"] != "running" for r in runs):
                return
            time.sleep(0.1)
    raise AssertionError("the run did not finish")


def test_an_operator_runs_a_reconciliation_and_explains_a_discrepancy(
    server: InterlockThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(server.url, "tok-operator", monkeypatch)
    assert not at.exception
    assert "No run yet" in "\n".join(i.value for i in at.info)
    at.button(key="rc_run").click().run()
    assert "started" in "\n".join(s.value for s in at.success)
    _wait_done(server.url)
    at = _page(server.url, "tok-operator", monkeypatch)
    runs, found = at.dataframe[0].value, at.dataframe[1].value
    assert list(runs["open"]) == [2] and list(runs["value at risk"]) == ["USD 1,240.00"]
    assert sorted(found["class"]) == ["duplicate", "missing"]
    assert "USD 990.00" in list(found["at risk"])
    assert any("Runbook" in m.value for m in at.markdown)
    duplicate = next(k for k in at.selectbox(key="rc_pick").options if "duplicate" in k)
    at.selectbox(key="rc_pick").select(duplicate).run()
    at.text_input(key="rc_reason").input("a clerk's copy, cancelled in the ERP").run()
    at.button(key="rc_explain").click().run()
    assert not at.exception
    assert "Explained" in "\n".join(s.value for s in at.success)
    assert "explained" in list(at.dataframe[1].value["repair"])


def test_a_viewer_reads_runs_but_has_no_repair_buttons(
    server: InterlockThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer tok-operator"}) as c:
        assert c.post("/api/v1/reconciliations", json={"period": "day"}).status_code == 202
    _wait_done(server.url)
    at = _page(server.url, "tok-viewer", monkeypatch)
    assert not at.exception
    assert len(at.dataframe) == 2
    assert not [b for b in at.button if b.key in ("rc_run", "rc_explain", "rc_resync")]
    assert "Repairing needs the operator role." in "\n".join(i.value for i in at.info)
