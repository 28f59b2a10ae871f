"""The Alerts page ranks money at risk now before latent risk, as the control API does: a
failed invoice posting above a failed catalog sync that carries more value."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
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

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "risk-view-token"


def _seed(lineage: DuckDBLineage, now: datetime) -> None:
    rows = []
    for i in range(60):
        at = now - timedelta(minutes=60 - i)
        status = "dead_lettered" if i % 2 else "ok"
        rows.append((f"i{i}", f"ci{i}", f"ki{i}", "interlock", "erp", "invoice.posted",
                     "erp.invoice.post", "invoice", f"in_{i}", status, 1, at, at, at,
                     Decimal("100.00"), "USD", f"001{i % 5}", 1))  # fmt: skip
        rows.append((f"p{i}", f"cp{i}", f"kp{i}", "interlock", "crm", "product.synced.crm",
                     "crm.product.sync", "product", f"SKU-{i}", status, 1, at, at, at,
                     Decimal("90000.00"), "USD", f"002{i % 5}", 1))  # fmt: skip
    lineage.con.executemany(
        """INSERT INTO events (event_id, correlation_id, idempotency_key, source, target, kind,
               step, entity_type, entity_id, status, attempt, event_time, recorded_at,
               ingested_at, amount, currency, customer_id, schema_version)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    lineage = DuckDBLineage()
    _seed(lineage, datetime.now(UTC))
    rules = [r for r in load_rules() if r.id == "invoice-sync-success"]
    rules += [
        r
        for r in load_rules([ROOT / "adapters" / "catalog" / "catalog.yaml"])
        if r.id == "catalog-sync-success"
    ]
    engine = SlaEngine(lineage, rules)
    asyncio.run(engine.tick())
    app = FastAPI()
    install_problem_handlers(app)
    app.state.tokens = TokenStore()
    app.state.tokens.add("vera", Role.VIEWER, TOKEN)
    app.include_router(sla_router(engine))

    @app.get("/api/v1/whoami")
    def whoami(principal: Annotated[Principal, Depends(require_role(Role.VIEWER))]) -> dict:
        return {"name": principal.name, "role": principal.role.name.lower()}

    with serve_app(app) as url:
        yield url
    lineage.close()


def test_alerts_page_ranks_money_at_risk_before_latent_risk(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_API_URL", api_url)
    monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "dashboards" / "pages" / "21_Alerts.py"), default_timeout=60)
    at.session_state["api_token"] = TOKEN
    at.run()
    assert not at.exception
    headers = [m.value for m in at.markdown if m.value.startswith("**")]
    assert [h.split("**")[1] for h in headers] == [
        "Invoice sync success",
        "Catalog reaches the CRM and billing",
    ]
    assert "money at risk" in headers[0] and "latent risk" in headers[1]
