"""The credit hold's shipped SLA rule: loaded from the flow's own room and checked
against the installed flow (kinds it names are kinds the flow declares)."""

from __future__ import annotations

from datetime import timedelta

from adapters.flows import SPEC
from sla_rules import load_rules
from sla_rules._check import check_rules


def test_the_hold_resolution_rule_ships_with_the_flow() -> None:
    assert [p.name for p in SPEC.rule_files] == ["credit_hold.yaml"]
    rules = load_rules(list(SPEC.rule_files))
    (rule,) = rules
    assert rule.id == "credit-hold-resolution"
    assert rule.indicator.kind == "latency"
    assert rule.indicator.start.kind == "order.on_hold"  # type: ignore[union-attr]
    assert rule.indicator.end.kind == "order.confirmed"  # type: ignore[union-attr]
    assert rule.indicator.deadline == timedelta(days=2)
    check_rules(rules, [SPEC])  # every kind it names is the flow's


def test_the_hold_steps_are_the_flows_but_never_waited_for() -> None:
    assert {"erp.order.hold", "crm.hold.publish", "support.hold.lift"} <= SPEC.step_names
    assert SPEC.step_kinds["erp.order.hold"] == "order.on_hold"
    table = {s.step for s in SPEC.steps.steps}
    assert "erp.order.hold" not in table
    assert SPEC.steps.hold_kinds == {"order.on_hold"}
