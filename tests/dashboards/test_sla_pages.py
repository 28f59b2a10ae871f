"""The SLA, Alerts and Reports pages against a real SLA router and engine on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import pytest
import streamlit as st
from _loopback import serve_app
from fastapi import Depends, FastAPI
from streamlit.testing.v1 import AppTest

from collector import Principal, Role, TokenStore
from collector.api import install_problem_handlers, require_role
from sla_rules import DuckDBLineage, SlaEngine, load_rules, sla_router

PAGES = Path(__file__).resolve().parents[2] / "dashboards" / "pages"
OPERATOR_TOKEN = "sla-ops-token"
VIEWER_TOKEN = "sla-view-token"


def _seed(lineage: DuckDBLineage, now: datetime) -> None:
    """Two hours of invoice postings, the last 40 minutes half dead-lettered."""
    rows = []
    for i in range(120):
        at = now - timedelta(minutes=120 - i)
        status = "dead_lettered" if i >= 80 and i % 2 else "ok"
        rows.append((f"e{i}", f"c{i}", f"k{i}", "interlock", "erp", "invoice.posted",
                     "erp.invoice.post", "invoice", f"in_{i}", status, 1, at, at, at,
                     Decimal("1200.00"), "USD", f"001{i % 5}", 1))  # fmt: skip
    lineage.con.executemany(
        """INSERT INTO events (event_id, correlation_id, idempotency_key, source, target, kind,
               step, entity_type, entity_id, status, attempt, event_time, recorded_at,
               ingested_at, amount, currency, customer_id, schema_version)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )


def _seed_reconciliation(lineage: DuckDBLineage, now: datetime) -> None:
    """One day run an hour ago that left a missing ERP sale open (USD 1,500.00)."""
    from adapters.reconcile import Check, Discrepancy, Kind, Repair
    from adapters.reconcile._store import DDL, finish_run, start_run

    lineage.con.execute(DDL)
    at = now - timedelta(hours=1)
    start_run(lineage.con, run_id="r1", period="day", start=at - timedelta(days=1), end=at,
              trigger="schedule", by="scheduler", at=at - timedelta(seconds=20))  # fmt: skip
    missing = Discrepancy(discrepancy_id="d1", check=Check.DEAL_TO_SALE, kind=Kind.MISSING,
                          system="erp", key="006A", customer_id="001A",
                          value_at_risk=Decimal("1500.00"), currency="USD",
                          detail="no ERP sale", repair=Repair.REPLAY)  # fmt: skip
    finish_run(lineage.con, "r1", at=at, found=[missing])


@pytest.fixture(scope="module")
def sla_api() -> Iterator[tuple[str, SlaEngine]]:
    lineage = DuckDBLineage()
    _seed(lineage, datetime.now(UTC))
    _seed_reconciliation(lineage, datetime.now(UTC))
    rules = [r for r in load_rules() if r.id in {"invoice-sync-success", "api-errors-erp"}]
    engine = SlaEngine(lineage, rules)
    asyncio.run(engine.tick())
    app = FastAPI()
    install_problem_handlers(app)  # errors answer as the control API does
    app.state.tokens = TokenStore()
    app.state.tokens.add("olivia", Role.OPERATOR, OPERATOR_TOKEN)
    app.state.tokens.add("vera", Role.VIEWER, VIEWER_TOKEN)
    app.include_router(sla_router(engine))

    # The collector serves this from the replay router; the pages ask it for the role.
    @app.get("/api/v1/whoami")
    def whoami(principal: Annotated[Principal, Depends(require_role(Role.VIEWER))]) -> dict:
        return {"name": principal.name, "role": principal.role.name.lower()}

    with serve_app(app) as url:
        yield url, engine
    lineage.close()


@pytest.fixture
def page(sla_api, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    url, _ = sla_api
    monkeypatch.setenv("INTERLOCK_API_URL", url)
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()

    def run(name: str, token: str | None = None) -> AppTest:
        at = AppTest.from_file(str(PAGES / name), default_timeout=60)
        if token:
            at.session_state["api_token"] = token
        return at.run()

    return run


def test_sla_page_lists_every_rule(page):
    at = page("20_SLAs.py", token=VIEWER_TOKEN)
    assert not at.exception
    assert at.title[0].value == "Business SLAs"
    table = at.dataframe[0].value
    assert set(table["SLA"]) == {"Invoice sync success", "ERP API error rate"}
    assert at.metric[0].value == "0 of 2"


def test_alerts_page_ranks_and_acknowledges(page, sla_api):
    _, engine = sla_api
    viewer = page("21_Alerts.py", token=VIEWER_TOKEN)
    assert not viewer.exception
    text = " ".join(m.value for m in viewer.markdown)
    # Both rules watch the same postings; the revenue-tier ERP alert ranks first.
    assert text.index("ERP API error rate") < text.index("Invoice sync success")
    assert "24,000.00 at risk" in text
    assert not viewer.button  # the acknowledge action is hidden from the viewer role

    operator = page("21_Alerts.py", token=OPERATOR_TOKEN)
    operator.text_input[0].input("on it")
    operator.button[0].click().run()
    assert not operator.exception
    acked = [a for a in engine.alerts() if a.state == "acknowledged"]
    assert [(a.acknowledged_by, a.ack_note) for a in acked] == [("olivia", "on it")]


def test_reports_page_shows_figures_and_downloads(page):
    at = page("22_Reports.py", token=VIEWER_TOKEN)
    assert not at.exception
    rows = {row["SLA"]: row for row in at.dataframe[0].value.to_dict("records")}
    invoice = rows["Invoice sync success"]
    assert invoice["Achieved"] == f"{100 * 100 / 120:.2f} %"
    assert invoice["Met"] == "no"
    assert [b.label for b in at.get("download_button")] == ["Download PDF", "Download CSV"]
    drift = {row["Figure"]: row for row in at.dataframe[-1].value.to_dict("records")}
    assert drift["Open discrepancies"]["This period"] == "1"
    assert drift["Open discrepancies"]["Previous period"] == "no run"
    assert drift["Value at risk (USD)"]["This period"] == "USD 1,500.00"
    assert drift["Value at risk (USD)"]["Change"] == "USD +1,500.00"
