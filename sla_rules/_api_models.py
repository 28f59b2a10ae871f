"""Response models of the SLA and alert endpoints (the OpenAPI contract).

``extra="allow"``: the models name the fields clients rely on; the contract test
(schemathesis) holds each to its type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Alert",
    "AlertChanges",
    "AlertPage",
    "SlaHistory",
    "SlaReport",
    "SlaRuleStatus",
    "SlaStatus",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class SlaRuleStatus(_Out):
    rule_id: str
    name: str
    kind: str
    impact_tier: str
    objective: float
    evaluated_at: str | None


class SlaStatus(_Out):
    rules: list[SlaRuleStatus]
    last_tick_seconds: float | None


class SlaHistory(_Out):
    rule_id: str
    objective: float
    history: list[dict[str, Any]]


class Alert(_Out):
    alert_id: str
    rule_id: str
    state: str
    severity: str | None
    risk_tier: str | None = None
    value_at_risk: float | None
    customers_affected: int | None
    score: float | None
    acknowledged_by: str | None


class AlertPage(_Out):
    alerts: list[Alert]


class AlertChanges(_Out):
    alert_id: str
    changes: list[dict[str, Any]]


class SlaReport(_Out):
    title: str
    period: str
    start: str
    end: str
    rows: list[dict[str, Any]]
    #: Reconciliation drift against the previous period; null without reconciliation.
    drift: dict[str, Any] | None = None
