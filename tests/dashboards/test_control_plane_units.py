"""The control plane's pure pieces: SLA health, milestones, the causation graph, trace
links, which pages a role sees, adapter rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dashboards._adapters import adapter_table, error_class_rows, latency_rows
from dashboards._home import adapter_rows, alert_rows, group_rows, sla_health, sla_rows
from dashboards._lineage_view import causation_dot, milestone_rows, recovery_rows, trace_url
from dashboards._nav import discover_pages, min_role_of
from dashboards._session import Principal, can

RULE = {"rule_id": "r", "name": "Order latency", "evaluated_at": "2026-11-26T10:00:00Z",
        "objective": 0.99, "sli": 0.995, "burn_rates": {"1h": 0.5},
        "error_budget_remaining": 0.5, "firing": None}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "health"),
    [
        ({}, "healthy"),
        ({"sli": 0.98}, "breached"),
        ({"burn_rates": {"1h": 2.0}}, "burning"),
        ({"firing": "ticket"}, "burning"),
        ({"evaluated_at": None}, "not evaluated"),
    ],
)
def test_sla_health(change: dict[str, Any], health: str) -> None:
    assert sla_health({**RULE, **change}) == health


def test_sla_rows_put_the_worst_first_in_percent() -> None:
    rows = sla_rows([RULE, {**RULE, "name": "Invoice sync", "sli": 0.9}])
    assert [r["SLA"] for r in rows] == ["Invoice sync", "Order latency"]
    assert rows[0]["health"] == "breached"
    assert rows[1]["achieved %"] == pytest.approx(99.5)
    assert rows[1]["budget left %"] == pytest.approx(50.0)


def test_alert_and_group_rows() -> None:
    alerts = [
        {"rule_name": "A", "state": "firing", "value_at_risk": 1250.5, "score": 9.0},
        {"rule_name": "B", "state": "acknowledged", "value_at_risk": 1.0, "score": 1.0},
    ]
    assert [r["alert"] for r in alert_rows(alerts)] == ["A"]
    assert alert_rows(alerts)[0]["value at risk"] == "1,250.50"
    groups = [{"reason": "mapping", "step": "erp.order.create", "count": 3,
               "value_by_currency": {"USD": "10", "EUR": "2.5"}}]  # fmt: skip
    assert group_rows(groups)[0]["value"] == "EUR 2.50, USD 10.00"


def _event(n: int, kind: str, seconds: float, status: str = "ok", **extra: Any) -> dict[str, Any]:
    at = f"2026-11-26T10:00:{seconds:06.3f}Z"
    return {"event_id": f"e{n}", "kind": kind, "status": status, "source": "interlock",
            "target": "erp", "event_time": at, **extra}  # fmt: skip


def test_milestones_measure_latency_between_business_steps() -> None:
    events = [
        _event(1, "opportunity.closed_won", 0),
        _event(2, "order.created", 1.5, "retrying"),
        _event(3, "order.created", 4.0),
        _event(4, "invoice.posted", 10.0),
        _event(5, "something.else", 11.0),
    ]
    rows = milestone_rows(events)
    assert [r["milestone"] for r in rows] == [
        "closed-won in CRM",
        "order in ERP",
        "invoice posted in ERP",
    ]
    assert [r["since previous"] for r in rows] == ["—", "4.0 s", "6.0 s"]
    assert rows[-1]["since start"] == "10.0 s"


def test_recovery_rows_list_retries_and_replays_only() -> None:
    events = [
        _event(1, "order.created", 0, "retrying", error={"reason": "rate_limit"}),
        _event(2, "order.created", 1),
        _event(3, "order.created", 2, "ok", replay_id="r-1", replay_of="e1"),
    ]
    rows = recovery_rows(events)
    assert [(r["status"], r["reason"], r["replay"]) for r in rows] == [
        ("retrying", "rate_limit", ""),
        ("ok", None, "r-1"),
    ]


def test_causation_dot_draws_causes_and_escapes_text() -> None:
    events = [
        _event(1, "opportunity.closed_won", 0, causation_id="outside"),
        _event(2, 'order."created"', 1, "failed", causation_id="e1", since_cause_ms=1000),
    ]
    dot = causation_dot(events)
    assert dot.startswith("digraph causation {") and dot.endswith("}")
    assert '"e1" -> "e2" [label="1.0 s"];' in dot
    assert "cause outside" in dot
    assert 'order.\\"created\\"' in dot
    assert "#c62828" in dot  # failed is red


def test_trace_url_uses_the_configured_template(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOCK_TRACE_URL", raising=False)
    assert trace_url("abc") is None
    monkeypatch.setenv("INTERLOCK_TRACE_URL", "http://127.0.0.1:16686/trace/{trace_id}")
    assert trace_url("ab/c") == "http://127.0.0.1:16686/trace/ab%2Fc"
    assert trace_url(None) is None
    monkeypatch.setenv("INTERLOCK_TRACE_URL", "http://no-placeholder")
    assert trace_url("abc") is None


def test_roles_are_ordered_and_pages_declare_their_minimum(tmp_path: Path) -> None:
    assert can(Principal("a", "admin"), "approver")
    assert not can(Principal("o", "operator"), "approver")
    assert not can(None, "viewer")
    assert not can(Principal("x", "superuser"), "viewer")
    page = tmp_path / "40_Secret.py"
    page.write_text('TITLE = "Secret"\nMIN_ROLE = "admin"\n')
    assert min_role_of(page) == "admin"
    assert discover_pages(tmp_path)[0].min_role == "admin"
    (tmp_path / "41_Open.py").write_text("x = 1\n")
    assert min_role_of(tmp_path / "41_Open.py") == "viewer"


def test_adapter_rows_keep_numbers_for_sorting() -> None:
    systems = [{"system": "erp", "calls": 10, "error_rate": 0.25, "circuit": "open-like",
                "latency_ms": {"p50": 10.0, "p95": 90.0, "p99": None},
                "errors_by_reason": {"auth": 2}, "wait_after_429_ms": 2000.0}]  # fmt: skip
    rows, config = adapter_table(systems, {"erp": "down: ConnectError"})
    assert rows[0]["error rate %"] == pytest.approx(25.0)
    assert rows[0]["circuit (derived)"] == "OPEN-LIKE"
    assert rows[0]["health check"] == "down: ConnectError"
    assert rows[0]["wait after 429"] == "2.0 s"
    assert "p95 ms" in config
    assert error_class_rows(systems) == [{"system": "erp", "reason": "auth", "errors": 2}]
    assert [r["percentile"] for r in latency_rows(systems)] == ["p50", "p95"]


def test_the_home_adapters_table_shows_a_system_a_plugin_adds() -> None:
    adapters = {"systems": [{"system": "crm", "calls": 3}, {"system": "servicenow", "calls": 2}]}
    rows = adapter_rows({"erp": "ok", "servicenow": "ok", "lineage": "ok"}, adapters)
    assert [r["system"] for r in rows] == ["crm", "servicenow", "erp"]
