"""Alerts ranked by business impact, and their lifecycle.

    firing ──ack(by)──▶ acknowledged ──clear for resolve_after──▶ resolved
       ▲                                                            │
       └──────────── fires again within reopen_within (flap) ───────┘

One open alert per (rule, scope): a condition that keeps firing updates it rather
than opening another. An alert resolves only after its condition has stayed clear
for ``resolve_after``, and one that fires again within ``reopen_within`` of
resolving is reopened (its ``flaps`` counted) instead of paging anew. Every state
change is a :class:`AlertChange` with who and when.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tracing import InterlockError

from ._indicators import Impact
from ._model import RiskTier, Rule

__all__ = [
    "Alert",
    "AlertBook",
    "AlertChange",
    "AlertNotFound",
    "AlertStateError",
    "impact_score",
    "rank_key",
]

SYSTEM_ACTOR = "sla-engine"
_SEVERITY_WEIGHT = {"page": 2.0, "ticket": 1.0}


class AlertNotFound(InterlockError):
    """No alert has this ID (HTTP 404)."""

    status = 404
    http_status = 404


class AlertStateError(InterlockError):
    """The alert is not in a state that allows this (HTTP 409)."""

    status = 409
    http_status = 409


def impact_score(
    tier_weight: float, value_at_risk: Decimal, customers: int, severity: str
) -> float:
    """Order alerts by business impact: money first, then reach, tier and urgency.

    ``weight * severity * (1 + log10(1 + value)) * (1 + log10(1 + customers))``:
    logarithms so a 10x larger amount ranks higher without drowning everything else.
    """
    value = max(float(value_at_risk), 0.0)
    return round(
        tier_weight
        * _SEVERITY_WEIGHT.get(severity, 1.0)
        * (1 + math.log10(1 + value))
        * (1 + math.log10(1 + max(customers, 0))),
        4,
    )


def rank_key(alert: Alert) -> tuple[int, Decimal, float, float]:
    """The alert list's order: risk tier, then value at risk, then score, then newest."""
    return (
        _risk_rank(alert.risk_tier),
        -Decimal(alert.value_at_risk),
        -alert.score,
        -alert.opened_at.timestamp(),
    )


def _risk_rank(tier: str) -> int:
    try:
        return RiskTier(tier).rank
    except ValueError:  # a tier a newer release wrote: rank it after the known ones
        return len(RiskTier)


@dataclass
class Alert:
    alert_id: str
    rule_id: str
    rule_name: str
    scope: str
    impact_tier: str
    severity: str
    condition: str
    state: str
    opened_at: datetime
    updated_at: datetime
    value_at_risk: Decimal = Decimal(0)
    peak_value_at_risk: Decimal = Decimal(0)
    customers_affected: int = 0
    items: int = 0
    score: float = 0.0
    burn_long: float = 0.0
    burn_short: float = 0.0
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_note: str | None = None
    resolved_at: datetime | None = None
    clear_since: datetime | None = None
    flaps: int = 0
    summary: str = ""
    #: The currency of ``value_at_risk`` (``"mixed"`` for several, ``None`` for none).
    currency: str | None = None
    #: ``at_risk`` or ``latent`` (the rule's ``risk``): the list ranks by it first.
    risk_tier: str = "at_risk"

    @property
    def open(self) -> bool:
        return self.state != "resolved"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
            elif isinstance(value, Decimal):
                data[key] = float(value)
        data.pop("clear_since")
        return data


@dataclass(frozen=True)
class AlertChange:
    alert_id: str
    at: datetime
    from_state: str | None
    to_state: str
    by: str
    note: str | None = None


@dataclass
class AlertBook:
    """The alerts in memory; the engine persists every change it returns."""

    alerts: dict[str, Alert] = field(default_factory=dict)

    def _latest(self, rule_id: str, scope: str) -> Alert | None:
        found = [a for a in self.alerts.values() if a.rule_id == rule_id and a.scope == scope]
        return max(found, key=lambda a: a.opened_at) if found else None

    def observe(
        self,
        rule: Rule,
        now: datetime,
        firing: tuple[str, str, float, float] | None,
        impact: Impact | None,
    ) -> tuple[Alert | None, list[AlertChange]]:
        """Apply one evaluation of ``rule``: ``firing`` is ``(condition, severity,
        burn_long, burn_short)`` of the most urgent tier that fires, or None."""
        latest = self._latest(rule.id, rule.scope)
        changes: list[AlertChange] = []
        policy = rule.alerting
        if firing is None:
            if latest is None or not latest.open:
                return latest, changes
            if latest.clear_since is None:
                latest.clear_since = now
            if now - latest.clear_since >= policy.resolve_after:
                changes.append(
                    AlertChange(
                        latest.alert_id,
                        now,
                        latest.state,
                        "resolved",
                        SYSTEM_ACTOR,
                        "condition clear",
                    )
                )
                latest.state = "resolved"
                latest.resolved_at = now
                latest.updated_at = now
            return latest, changes
        condition, severity, burn_long, burn_short = firing
        alert = latest
        if alert is not None and not alert.open:
            assert alert.resolved_at is not None
            if now - alert.resolved_at <= policy.reopen_within:
                changes.append(
                    AlertChange(
                        alert.alert_id,
                        now,
                        "resolved",
                        "firing",
                        SYSTEM_ACTOR,
                        "fired again: reopened (flap)",
                    )
                )
                alert.state = "firing"
                alert.flaps += 1
                alert.resolved_at = None
                alert.acknowledged_by = alert.acknowledged_at = alert.ack_note = None
            else:
                alert = None
        if alert is None:
            alert = Alert(
                alert_id=str(uuid.uuid4()),
                rule_id=rule.id,
                rule_name=rule.name,
                scope=rule.scope,
                impact_tier=rule.impact_tier.value,
                risk_tier=rule.risk.value,
                severity=severity,
                condition=condition,
                state="firing",
                opened_at=now,
                updated_at=now,
            )
            self.alerts[alert.alert_id] = alert
            changes.append(
                AlertChange(
                    alert.alert_id,
                    now,
                    None,
                    "firing",
                    SYSTEM_ACTOR,
                    f"{condition}: burn {burn_long:.1f}x/{burn_short:.1f}x",
                )
            )
        elif alert.severity != severity:
            changes.append(
                AlertChange(
                    alert.alert_id,
                    now,
                    alert.state,
                    alert.state,
                    SYSTEM_ACTOR,
                    f"severity {alert.severity} -> {severity}",
                )
            )
        alert.severity = severity
        alert.condition = condition
        alert.burn_long, alert.burn_short = burn_long, burn_short
        alert.clear_since = None
        alert.updated_at = now
        if impact is not None:
            alert.value_at_risk = impact.value_at_risk
            alert.peak_value_at_risk = max(alert.peak_value_at_risk, impact.value_at_risk)
            alert.customers_affected = impact.customers
            alert.items = impact.items
            alert.currency = impact.currency
        alert.risk_tier = rule.risk.value
        alert.score = impact_score(
            rule.impact_tier.weight, alert.value_at_risk, alert.customers_affected, severity
        )
        alert.summary = (
            f"{rule.name}: {condition.replace('_', ' ')} burn {burn_long:.1f}x "
            f"(objective {rule.objective:.2%}); {alert.items} items, "
            f"{alert.currency + ' ' if alert.currency else ''}{alert.value_at_risk:,.2f} at "
            f"risk, {alert.customers_affected} customers"
        )
        return alert, changes

    def acknowledge(self, alert_id: str, by: str, note: str | None, now: datetime) -> AlertChange:
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert {alert_id}")
        if alert.state != "firing":
            raise AlertStateError(
                f"alert {alert_id} is {alert.state}; only a firing alert can be acknowledged"
            )
        alert.state = "acknowledged"
        alert.acknowledged_by = by
        alert.acknowledged_at = now
        alert.ack_note = note
        alert.updated_at = now
        return AlertChange(alert_id, now, "firing", "acknowledged", by, note)

    def ranked(self, state: str | None = None, include_resolved: bool = False) -> list[Alert]:
        """Alerts by risk tier (money at risk now before latent), then value at risk,
        then impact score, highest first (then newest)."""
        chosen = [
            a
            for a in self.alerts.values()
            if (state is None or a.state == state) and (include_resolved or state or a.open)
        ]
        return sorted(chosen, key=rank_key)
