"""Business SLAs: the rule format and shipped rules, the incremental evaluator, alerts
ranked by business impact, Prometheus metrics and rules, and the executive report."""

from ._alertmanager import (
    AlertmanagerClient,
    AlertmanagerSender,
    alert_labels,
    alert_payload,
    alertname,
)
from ._alerts import Alert, AlertChange, AlertNotFound, AlertStateError, impact_score
from ._api import sla_router
from ._cli import register_cli
from ._engine import ENGINE_DDL, LineageAccess, RuleStatus, SlaEngine, utcnow
from ._memory import DuckDBLineage
from ._model import FORMAT_VERSION, ImpactTier, RiskTier, Rule, RuleFileError, load_rules
from ._prometheus import export_prometheus_rules, prometheus_rules, register_sla_metrics
from ._report import SlaReport, build_report, report_csv, report_pdf, resolve_period

__all__ = [
    "ENGINE_DDL",
    "FORMAT_VERSION",
    "Alert",
    "AlertChange",
    "AlertNotFound",
    "AlertStateError",
    "AlertmanagerClient",
    "AlertmanagerSender",
    "DuckDBLineage",
    "ImpactTier",
    "LineageAccess",
    "RiskTier",
    "Rule",
    "RuleFileError",
    "RuleStatus",
    "SlaEngine",
    "SlaReport",
    "alert_labels",
    "alert_payload",
    "alertname",
    "build_report",
    "export_prometheus_rules",
    "impact_score",
    "load_rules",
    "prometheus_rules",
    "register_cli",
    "register_sla_metrics",
    "report_csv",
    "report_pdf",
    "resolve_period",
    "sla_router",
    "utcnow",
]
