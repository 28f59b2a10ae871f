"""The control API endpoints, the executive report (PDF, CSV) and the CLI."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from _sla_helpers import TOKENS, Builder, FakeClock, api_app, seed_report_lineage, serve

from sla_rules import SlaEngine, load_rules, register_cli
from sla_rules._cli import plugin_rule_files
from sla_rules._report import resolve_period

ROOT = Path(__file__).resolve().parents[2]

SHIPPED = {rule.id: rule for rule in load_rules()}


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="interlock")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
async def engine(lineage, build: Builder, clock: FakeClock) -> SlaEngine:
    seed_report_lineage(build, clock.now)
    engine = SlaEngine(lineage, [SHIPPED["invoice-sync-success"], SHIPPED["duplicate-rate"]],
                       clock=clock)  # fmt: skip
    await engine.tick()
    return engine


@pytest.fixture
async def client(engine: SlaEngine):
    transport = httpx.ASGITransport(app=api_app(engine))
    # Reads send the viewer's token (reads need one); actions pass their own.
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sla", headers=auth("viewer")
    ) as c:
        yield c


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def test_status_history_and_alerts(client: httpx.AsyncClient, engine: SlaEngine):
    body = (await client.get("/api/v1/sla")).json()
    rules = {r["rule_id"]: r for r in body["rules"]}
    invoice = rules["invoice-sync-success"]
    assert (invoice["good"], invoice["bad"], invoice["firing"]) == (298, 2, "page")
    assert invoice["burn_rates"]["1h"] == pytest.approx((2 / 4) / 0.005)  # 2 of 4 bad

    history = (await client.get("/api/v1/sla/invoice-sync-success/history")).json()
    assert history["history"][0]["bad"] == 2
    assert (await client.get("/api/v1/sla/nope/history")).status_code == 404

    alerts = (await client.get("/api/v1/alerts")).json()["alerts"]
    assert [a["rule_id"] for a in alerts] == ["invoice-sync-success"]
    assert alerts[0]["value_at_risk"] == 50_000.0
    assert alerts[0]["customers_affected"] == 2


async def test_acknowledge_needs_operator(client: httpx.AsyncClient, engine: SlaEngine):
    [alert] = engine.alerts()
    url = f"/api/v1/alerts/{alert.alert_id}/ack"
    anonymous = client.build_request("POST", url, json={})
    del anonymous.headers["authorization"]
    assert (await client.send(anonymous)).status_code == 401
    refused = await client.post(url, json={}, headers=auth("viewer"))
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    done = await client.post(url, json={"note": "on it"}, headers=auth("operator"))
    assert done.status_code == 200
    assert (done.json()["state"], done.json()["acknowledged_by"]) == ("acknowledged", "olivia")
    again = await client.post(url, json={}, headers=auth("operator"))
    assert again.status_code == 409
    missing = await client.post("/api/v1/alerts/nope/ack", json={}, headers=auth("operator"))
    assert missing.status_code == 404
    changes = (await client.get(f"/api/v1/alerts/{alert.alert_id}/changes")).json()["changes"]
    assert changes[-1]["by"] == "olivia" and changes[-1]["note"] == "on it"


async def test_report_json_and_csv_hold_the_figures(client: httpx.AsyncClient):
    report = (await client.get("/api/v1/reports/sla", params={"period": "last-7d"})).json()
    [row] = [r for r in report["rows"] if r["rule_id"] == "invoice-sync-success"]
    assert (row["good"], row["bad"]) == (198, 2)
    assert row["achieved"] == pytest.approx(0.99)
    assert row["previous"] == 1.0 and row["trend"] == pytest.approx(-0.01)
    assert row["budget_used"] == pytest.approx(2.0) and row["met"] is False
    assert report["incidents"][0]["value_at_risk"] == 50_000.0

    response = await client.get("/api/v1/reports/sla", params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.text)))
    by_rule = {line[0]: line for line in lines if line and line[0] == "invoice-sync-success"}
    header = next(line for line in lines if line and line[0] == "rule_id")
    row_csv = dict(zip(header, by_rule["invoice-sync-success"], strict=True))
    # Percent, as the PDF prints them (the PDF's line says 99.00% and 200.0%).
    assert row_csv["achieved_pct"] == "99.0000"
    assert row_csv["error_budget_used_pct"] == "200.0000"
    assert row_csv["trend_pts"] == "-1.0000"

    bad = await client.get("/api/v1/reports/sla", params={"period": "custom"})
    assert bad.status_code == 422 and "start and end" in bad.json()["detail"]
    assert (await client.get("/api/v1/reports/sla", params={"period": "year"})).status_code == 422


def test_periods():
    from _sla_helpers import T0  # a Monday noon

    start, end, _ = resolve_period("week", T0)
    assert (start.isoformat(), end.isoformat()) == (
        "2026-02-23T00:00:00+00:00", "2026-03-02T00:00:00+00:00",
    )  # fmt: skip
    start, end, label = resolve_period("month", T0)
    assert (start.day, start.month, end.month, label) == (1, 2, 3, "February 2026")
    with pytest.raises(ValueError, match="after"):
        resolve_period("custom", T0, T0, T0)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
async def test_cli_report_pdf_and_csv_over_http(engine: SlaEngine, tmp_path: Path):
    with serve(api_app(engine)) as url:
        pdf = tmp_path / "report.pdf"
        token = TOKENS["viewer"]
        assert cli("report", "--period", "last-7d", "--format", "pdf", "--out", str(pdf),
                   "--api", url, "--token", token) == 0  # fmt: skip
        out = tmp_path / "report.csv"
        assert cli("report", "--format", "csv", "--out", str(out), "--api", url,
                   "--token", token) == 0  # fmt: skip
        assert cli("report", "--period", "custom", "--out", str(out), "--api", url,
                   "--token", token) == 1  # fmt: skip
    assert pdf.read_bytes().startswith(b"%PDF")
    argv = ["/usr/bin/pdftotext", "-layout", str(pdf), "-"]
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, check=True)
    text = done.stdout
    assert "Executive SLA report: Last 7 days" in text
    line = next(x for x in text.splitlines() if "Invoice sync success" in x and "%" in x)
    for figure in ("99.50%", "99.00%", "100.00%", "-1.00 pts", "200.0%", "198", "2"):
        assert figure in line, (figure, line)
    assert "50,000.00" in text  # the incident's value at risk
    assert "Top incidents by business impact" in text
    assert ",99.0000," in out.read_text()  # achieved, in percent as in the PDF
    assert cli("report", "--out", str(out), "--api", "http://127.0.0.1:9") == 3


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
def test_cli_export_prometheus(tmp_path: Path):
    out = tmp_path / "sla.rules.yml"
    assert cli("rules", "export-prometheus", str(out)) == 0
    check = subprocess.run(["/usr/bin/promtool", "check", "rules", str(out)], capture_output=True,
                           text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # By default the installed plug-ins' rule files are in too: reconciliation drift
    # (the reconcile room), credit holds (the quote-to-cash flow) and the catalog sync
    # (two SLOs), 9 rules an SLO.
    groups = {g["name"] for g in yaml.safe_load(out.read_text())["groups"]}
    assert {"interlock-sla-reconciliation-drift", "interlock-sla-credit-hold-resolution"} <= groups
    assert "SUCCESS: 144 rules found" in check.stdout  # 12 shipped + 4 plug-in SLOs
    assert plugin_rule_files() == (
        ROOT / "adapters" / "catalog" / "catalog.yaml",
        ROOT / "adapters" / "flows" / "credit_hold.yaml",
        ROOT / "adapters" / "reconcile" / "reconciliation.yaml",
    )
    # --rules still narrows the export to the files named.
    assert cli("rules", "export-prometheus", str(out), "--rules", str(ROOT / "sla_rules")) == 0
    assert len(yaml.safe_load(out.read_text())["groups"]) == 12
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nservice: s\nslos: [{id: x1}]\n")
    assert cli("rules", "export-prometheus", str(out), "--rules", str(bad)) == 2
