"""Prometheus: the engine's per-rule gauges, and alerting rules generated from the SLOs.

The exposition carries ``interlock_sla_events_total{rule,outcome}`` (verdicts seen
since the collector started), so the generated recording rules compute the same error
ratios and burn-rate conditions as the engine, and a team running Prometheus and
Alertmanager pages on the same conditions without the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ._engine import SlaEngine, window_label
from ._model import Rule

__all__ = ["export_prometheus_rules", "prometheus_rules", "register_sla_metrics"]

_COUNTER = "interlock_sla_events_total"


class _SlaCollector(Collector):
    def __init__(self, engine: SlaEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        objective = GaugeMetricFamily(
            "interlock_sla_objective_ratio", "SLO objective (good share) of each rule",
            labels=["rule", "impact_tier"],
        )  # fmt: skip
        sli = GaugeMetricFamily(
            "interlock_sla_sli_ratio", "Good share over each window", labels=["rule", "window"]
        )
        budget = GaugeMetricFamily(
            "interlock_sla_error_budget_remaining_ratio",
            "Share of the SLO window's error budget left (negative when overspent)",
            labels=["rule"],
        )
        burn = GaugeMetricFamily(
            "interlock_sla_burn_rate", "Error budget burn rate over each window",
            labels=["rule", "window"],
        )  # fmt: skip
        events = CounterMetricFamily(
            "interlock_sla_events", "SLI verdicts seen since the collector started",
            labels=["rule", "outcome"],
        )  # fmt: skip
        firing = GaugeMetricFamily(
            "interlock_sla_alert_firing", "1 for each open SLA alert",
            labels=["rule", "scope", "severity", "state", "impact_tier"],
        )  # fmt: skip
        value = GaugeMetricFamily(
            "interlock_sla_alert_value_at_risk",
            "Sum of amounts of the transactions breaching or stuck, per open alert",
            labels=["rule", "scope", "severity", "impact_tier"],
        )
        customers = GaugeMetricFamily(
            "interlock_sla_alert_customers_affected", "Distinct customers per open alert",
            labels=["rule", "scope", "severity", "impact_tier"],
        )  # fmt: skip
        score = GaugeMetricFamily(
            "interlock_sla_alert_impact_score", "Business impact score per open alert",
            labels=["rule", "scope", "severity", "impact_tier"],
        )  # fmt: skip
        tick = GaugeMetricFamily(
            "interlock_sla_evaluation_seconds", "Duration of the last SLA evaluation tick"
        )
        for status in self.engine.status():
            objective.add_metric([status.rule_id, status.impact_tier], status.objective)
            budget.add_metric([status.rule_id], status.error_budget_remaining)
            for window, ratio in status.sli_by_window.items():
                sli.add_metric([status.rule_id, window], ratio)
            for window, rate in status.burn_rates.items():
                burn.add_metric([status.rule_id, window], rate)
        for rule_id, (good, bad) in self.engine.counts.items():
            events.add_metric([rule_id, "good"], good)
            events.add_metric([rule_id, "bad"], bad)
        for alert in self.engine.alerts():
            labels = [alert.rule_id, alert.scope, alert.severity, alert.impact_tier]
            firing.add_metric([*labels[:3], alert.state, alert.impact_tier], 1)
            value.add_metric(labels, float(alert.value_at_risk))
            customers.add_metric(labels, alert.customers_affected)
            score.add_metric(labels, alert.score)
        tick.add_metric([], self.engine.last_tick_seconds)
        yield from (objective, sli, budget, burn, events, firing, value, customers, score, tick)


def register_sla_metrics(registry: CollectorRegistry, engine: SlaEngine) -> None:
    """Expose the engine's last evaluation as ``interlock_sla_*`` metrics on ``registry``."""
    registry.register(_SlaCollector(engine))


def _ratio_record(window: str) -> str:
    return f"interlock_sla:error_ratio:rate{window}"


#: Where the dashboard listens by default (``make run``); runbook links point into it.
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501"


def runbook_url(rule: Rule, dashboard_url: str = DEFAULT_DASHBOARD_URL) -> str | None:
    """The rule's runbook as the dashboard serves it (``.../Runbooks?name=order-latency``),
    not a repository path a receiver cannot open; ``None`` when the rule names none."""
    if not rule.runbook:
        return None
    name = Path(rule.runbook).name.removesuffix(".md")
    return f"{dashboard_url.rstrip('/')}/Runbooks?name={quote(name)}"


def prometheus_rules(
    rules: Sequence[Rule], *, dashboard_url: str = DEFAULT_DASHBOARD_URL
) -> dict[str, Any]:
    """The Prometheus rule document (recording + alerting) for ``rules``."""
    groups: list[dict[str, Any]] = []
    for rule in rules:
        labels = {"rule": rule.id, "service": rule.service, "impact_tier": rule.impact_tier.value}
        windows = sorted(
            {w for _, _, tier in rule.alerting.tiers() for w in (tier.long, tier.short)}
        )
        records: list[dict[str, Any]] = []
        for window in windows:
            w = window_label(window)
            sel = f'{_COUNTER}{{rule="{rule.id}"'
            records.append(
                {
                    "record": _ratio_record(w),
                    "expr": f'sum(rate({sel},outcome="bad"}}[{w}])) / sum(rate({sel}}}[{w}]))',
                    "labels": dict(labels),
                }
            )
        records.append(
            {"record": "interlock_sla:objective:ratio", "expr": f"vector({rule.objective!r})",
             "labels": dict(labels)}
        )  # fmt: skip
        budget = rule.error_budget
        for name, severity, tier in rule.alerting.tiers():
            long_w, short_w = window_label(tier.long), window_label(tier.short)
            threshold = f"({tier.burn_rate!r} * {budget:.6g})"
            match = f'{{rule="{rule.id}"}}'
            records.append(
                {
                    "alert": "InterlockSla" + "".join(p.title() for p in name.split("_")),
                    "expr": f"{_ratio_record(long_w)}{match} > {threshold} "
                    f"and {_ratio_record(short_w)}{match} > {threshold}",
                    "labels": {**labels, "severity": severity, "burn_condition": name},
                    "annotations": {
                        "summary": f"{rule.name}: error budget burning {tier.burn_rate:g}x "
                        f"over {long_w} (confirmed over {short_w})",
                        "description": f"Objective {rule.objective:.2%} over "
                        f"{window_label(rule.window)}; impact tier {rule.impact_tier.value}."
                        + (f" {rule.description}" if rule.description else ""),
                        **(
                            {"runbook_url": url}
                            if (url := runbook_url(rule, dashboard_url))
                            else {}
                        ),
                    },
                }
            )
        groups.append({"name": f"interlock-sla-{rule.id}", "rules": records})
    return {"groups": groups}


class _NoAliases(yaml.SafeDumper):
    """Spell every label set out; YAML anchors make the file hard to read and diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def export_prometheus_rules(
    rules: Sequence[Rule], out: Path, *, dashboard_url: str = DEFAULT_DASHBOARD_URL
) -> Path:
    """Write the Prometheus rule file for ``rules`` to ``out``."""
    header = (
        "# Prometheus recording and alerting rules generated from the Interlock SLA rules\n"
        "# by `interlock rules export-prometheus`. Regenerate; do not edit by hand.\n"
    )
    text = yaml.dump(
        prometheus_rules(rules, dashboard_url=dashboard_url),
        Dumper=_NoAliases,
        sort_keys=False,
        width=200,
    )
    out.write_text(header + text, encoding="utf-8")
    return out
