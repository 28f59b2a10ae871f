"""The Reports page's tables, from ``_data.sla_report()`` (pure, unit-tested).

Every cell is text in the units the PDF prints, so the page, the PDF and the CSV agree:
percentages with two decimals, the trend in percentage points, money with its currency,
durations in words and times in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ._format import at_risk_text, format_duration_ms, format_money, format_time, to_decimal

__all__ = ["NO_DATA", "drift_rows", "incident_rows", "pct_text", "report_rows", "trend_text"]

#: What a figure says when its period measured nothing.
NO_DATA = "no data"


def pct_text(value: float | None, digits: int = 2) -> str:
    """``0.995`` -> ``"99.50 %"``; nothing measured -> ``"no data"``."""
    return NO_DATA if value is None else f"{value * 100:,.{digits}f} %"


def trend_text(value: float | None) -> str:
    """``-0.01`` -> ``"-1.00 pts"``; no previous period to compare -> ``"no data"``."""
    return NO_DATA if value is None else f"{value * 100:+.2f} pts"


def report_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One row per SLA: objective, achieved, previous, trend, budget used, met."""
    out = []
    for r in rows:
        met = r.get("met")
        out.append(
            {
                "SLA": str(r.get("name")),
                "Objective": pct_text(r.get("objective")),
                "Achieved": pct_text(r.get("achieved")),
                "Previous period": pct_text(r.get("previous")),
                "Trend": trend_text(r.get("trend")),
                "Budget used": pct_text(r.get("budget_used"), 1),
                "Met": NO_DATA if met is None else ("yes" if met else "no"),
            }
        )
    return out


def incident_rows(incidents: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The top incidents with readable headers, UTC times, durations and money."""
    out = []
    for i in incidents:
        resolved = i.get("resolved_at")
        out.append(
            {
                "SLA": i.get("rule_name"),
                "Severity": i.get("severity"),
                "Opened": format_time(i.get("opened_at")),
                "Lasted": format_duration_ms(float(i.get("duration_s") or 0) * 1000)
                + ("" if resolved else " (still open)"),
                "Value at risk": at_risk_text(i).removesuffix(" at risk"),
                "Customers": int(i.get("customers_affected") or 0),
                "Impact score": f"{float(i.get('score') or 0):.1f}",
            }
        )
    return out


def _count(value: Any) -> str:
    return "no run" if value is None else f"{int(value):,}"


def _change(now: Any, then: Any) -> str:
    return NO_DATA if now is None or then is None else f"{int(now) - int(then):+,}"


def drift_rows(drift: Mapping[str, Any]) -> list[dict[str, str]]:
    """The report's reconciliation drift (``drift`` of ``/reports/sla``): runs, open
    discrepancies, customers and the value at risk per currency, this period against
    the previous one. A period with no completed run reads ``"no run"``."""
    now, then = drift.get("current") or {}, drift.get("previous") or {}
    rows = [
        {
            "Figure": "Runs (failed)",
            "This period": f"{now.get('runs', 0):,} ({now.get('failed_runs', 0):,})",
            "Previous period": f"{then.get('runs', 0):,} ({then.get('failed_runs', 0):,})",
            "Change": _change(now.get("runs", 0), then.get("runs", 0)),
        },
        {
            "Figure": "Open discrepancies",
            "This period": _count(now.get("open_discrepancies")),
            "Previous period": _count(then.get("open_discrepancies")),
            "Change": _change(now.get("open_discrepancies"), then.get("open_discrepancies")),
        },
        {
            "Figure": "Customers affected",
            "This period": f"{now.get('customers_affected', 0):,}",
            "Previous period": f"{then.get('customers_affected', 0):,}",
            "Change": _change(now.get("customers_affected", 0), then.get("customers_affected", 0)),
        },
    ]
    for currency, delta in sorted((drift.get("change_value_at_risk") or {}).items()):
        change = to_decimal(delta) or Decimal(0)
        rows.append(
            {
                "Figure": f"Value at risk ({currency})",
                "This period": format_money((now.get("value_at_risk") or {}).get(currency, 0),
                                            currency),
                "Previous period": format_money(
                    (then.get("value_at_risk") or {}).get(currency, 0), currency
                ),
                # As the PDF prints it: "USD +1,500.00".
                "Change": f"{currency} {'+' if change > 0 else ''}{format_money(change)}",
            }
        )  # fmt: skip
    return rows
