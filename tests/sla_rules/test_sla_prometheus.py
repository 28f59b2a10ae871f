"""Prometheus: the exposition passes promtool, and the generated rules page on a fast
burn and stay silent on a blip (the shipped ``promtool test rules`` unit test)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from _sla_helpers import T0, Builder, FakeClock
from prometheus_client import CollectorRegistry, generate_latest

from sla_rules import (
    SlaEngine,
    export_prometheus_rules,
    load_rules,
    prometheus_rules,
    register_cli,
    register_sla_metrics,
)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "sla_rules" / "prometheus"
needs_promtool = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="needs promtool")


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60)


def test_shipped_rule_file_is_up_to_date(tmp_path: Path):
    fresh = export_prometheus_rules(load_rules(), tmp_path / "x.yml")
    assert fresh.read_text() == (SHIPPED_DIR / "interlock-sla.rules.yml").read_text(), (
        "regenerate: interlock rules export-prometheus "
        "sla_rules/prometheus/interlock-sla.rules.yml --rules sla_rules"
    )


@needs_promtool
def test_generated_rules_pass_promtool_check_and_unit_tests(tmp_path: Path):
    rules = export_prometheus_rules(load_rules(), tmp_path / "interlock-sla.rules.yml")
    check = promtool("check", "rules", str(rules))
    assert check.returncode == 0, check.stdout + check.stderr
    assert b"SUCCESS: 108 rules found" in check.stdout  # 12 SLOs, 9 rules each
    shutil.copy(SHIPPED_DIR / "interlock-sla.test.yml", tmp_path)
    test = promtool("test", "rules", str(tmp_path / "interlock-sla.test.yml"))
    assert test.returncode == 0, test.stdout + test.stderr


@needs_promtool
async def test_metrics_exposition(lineage, build: Builder, clock: FakeClock):
    for i in range(10):
        build.event("invoice.posted", T0 - timedelta(minutes=10 - i), corr=f"i{i}",
                    step="erp.invoice.post", target="erp",
                    status="dead_lettered" if i < 5 else "ok", amount=100)  # fmt: skip
    rules = {r.id: r for r in load_rules()}
    engine = SlaEngine(lineage, [rules["invoice-sync-success"], rules["event-backlog"]],
                       clock=clock)  # fmt: skip
    registry = CollectorRegistry()
    register_sla_metrics(registry, engine)
    await engine.tick()
    rule = {"rule": "invoice-sync-success"}
    get = registry.get_sample_value
    assert get("interlock_sla_sli_ratio", {**rule, "window": "30d"}) == 0.5
    assert get("interlock_sla_burn_rate", {**rule, "window": "1h"}) == 100.0
    # Burn 100 over the 11 minutes observed of 30 days: 2.5 % of the budget is spent.
    assert get("interlock_sla_error_budget_remaining_ratio", rule) == round(
        1 - 100 * 11 / 43_200, 6
    )
    assert get("interlock_sla_events_total", {**rule, "outcome": "bad"}) == 5
    labels = {**rule, "scope": "all", "severity": "page", "impact_tier": "cash_collection"}
    assert get("interlock_sla_alert_value_at_risk", labels) == 500.0
    assert get("interlock_sla_alert_customers_affected", labels) == 1
    assert get("interlock_sla_objective_ratio", {**rule, "impact_tier": "cash_collection"}) == 0.995
    lint = promtool("check", "metrics", stdin=generate_latest(registry))
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_every_alert_rule_links_its_runbook_in_the_dashboard():
    document = prometheus_rules(load_rules(), dashboard_url="https://ops.example.com/")
    alerts = [r for g in document["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) == 36  # 12 SLOs, 3 burn conditions each
    urls = {a["annotations"].get("runbook_url") for a in alerts}
    assert None not in urls
    assert all(u.startswith("https://ops.example.com/Runbooks?name=") for u in urls)
    assert "https://ops.example.com/Runbooks?name=order-latency" in urls


def test_report_help_shows_the_defaults(capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="interlock")
    register_cli(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: last-7d)" in shown and "(default: pdf)" in shown
