"""The reconcile room ships its drift SLA rule into the host: the SLA plug-in loads it
with the shipped rules, checks it against the installed flows, and exports it to
Prometheus rules that promtool accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from _hosts import SYSTEMS

from adapters.flows import SPEC
from adapters.reconcile.plugin import RULE_FILE, ReconcilePlugin
from collector import EmbeddedBus, Host, Settings, ordered
from sla_rules import export_prometheus_rules, load_rules
from sla_rules.plugin import SlaPlugin

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def bare_host() -> Host:
    host = Host(Settings(), bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    for info in SYSTEMS[1:]:
        host.add_system(info)
    host.declare_flow(SPEC)
    return host


async def test_the_reconcile_plugin_ships_the_drift_rule_to_the_sla_engine() -> None:
    host = bare_host()
    plugins = ordered([SlaPlugin(), ReconcilePlugin(scheduled=False)])
    assert [p.name for p in plugins] == ["reconcile", "sla"]  # rule files before loading
    for plugin in plugins:
        await plugin.install(host)
    assert RULE_FILE in host.rule_files
    assert "reconciliation-drift" in host.rule_steps
    assert "invoice-sync-success" in host.rule_steps  # the shipped rules still load


async def test_without_the_reconcile_plugin_there_is_no_drift_rule() -> None:
    host = bare_host()
    await SlaPlugin().install(host)
    # Only the flow's own rule files (credit holds): no drift rule.
    assert host.rule_files == SPEC.rule_files and "reconciliation-drift" not in host.rule_steps


def test_host_rule_files_are_kept_once_in_install_order(tmp_path: Path) -> None:
    host = bare_host()
    host.add_rule_files(RULE_FILE, tmp_path)
    host.add_rule_files(RULE_FILE)
    assert host.rule_files == (*SPEC.rule_files, RULE_FILE, tmp_path)


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="needs promtool")
def test_the_drift_rule_exports_to_rules_promtool_accepts(tmp_path: Path) -> None:
    rules = load_rules([RULE_FILE])
    out = export_prometheus_rules(rules, tmp_path / "drift.rules.yml")
    check = subprocess.run([PROMTOOL, "check", "rules", str(out)], capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert b"SUCCESS: 9 rules found" in check.stdout
