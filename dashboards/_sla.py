"""The SLAs page's table, from ``_data.sla_rules()`` (pure, unit-tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._runbooks import runbook_name

__all__ = [
    "MIN_OBSERVED_SHARE",
    "budget_text",
    "coverage_text",
    "sla_table",
    "span_text",
    "table_height",
]

#: The share of a window the SLA engine needs observed before it judges it.
MIN_OBSERVED_SHARE = 0.1
#: Streamlit's data frame: header and rows are 35 px each, plus a border.
_ROW_PX = 35


def runbook_url(reference: str | None) -> str | None:
    """The in-app link of a rule's runbook (``./Runbooks?name=...``), ``None`` if unset."""
    name = runbook_name(reference)
    return None if name is None else f"./Runbooks?name={name}"


def table_height(rows: int) -> int:
    """The height that shows ``rows`` rows and the header without an inner scroll bar."""
    return _ROW_PX * (rows + 1) + 3


def span_text(minutes: int) -> str:
    """Whole minutes in the largest units that read naturally.

    >>> [span_text(m) for m in (0, 5, 61, 1440, 43_200, 1500)]
    ['0 min', '5 min', '1 h 1 min', '1 d', '30 d', '1 d 1 h']
    """
    days, rest = divmod(max(0, minutes), 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {mins} min" if mins else "")
    return f"{mins} min"


def coverage_text(rule: Mapping[str, Any]) -> str:
    """``"5 min of 30 d: too little data"`` or ``"30 d"`` when the window is covered."""
    observed = rule.get("observed_minutes")
    window = rule.get("window_minutes")
    if not isinstance(observed, int) or not isinstance(window, int) or window <= 0:
        return str(rule.get("window") or "—")
    span = span_text(window)
    if observed >= window:
        return span
    if rule.get("no_data") and not observed:
        # A drift rule without reconciliation runs: nothing to measure, not a failure.
        return f"nothing of {span}: no data"
    seen = span_text(observed) if observed else "nothing"
    enough = rule.get("enough_data", observed >= MIN_OBSERVED_SHARE * window)
    return f"{seen} of {span}" + ("" if enough else ": too little data")


def budget_text(rule: Mapping[str, Any]) -> str:
    """The error budget left as a percentage; exhausted budgets say so."""
    remaining = rule.get("error_budget_remaining")
    if remaining is None:
        return "—"
    value = float(remaining) * 100
    if value <= 0:
        return f"exhausted ({value:,.1f} %)"
    return f"{value:.1f} %"


def sla_table(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per evaluated SLA: objective, achieved over its window, how much of the
    window holds data, the budget left over the time observed, burn rates, counts."""
    rows = []
    for r in rules:
        burns = r.get("burn_rates") or {}
        rows.append(
            {
                "SLA": r["name"],
                "Impact tier": str(r.get("impact_tier") or "").replace("_", " "),
                "Objective": float(r["objective"]) * 100,
                "Achieved": float(r["sli"]) * 100,
                "Window observed": coverage_text(r),
                "Budget left": budget_text(r),
                "Burn 1h": burns.get("1h", 0.0),
                "Burn 6h": burns.get("6h", 0.0),
                "Alert": r.get("firing") or "",
                "Good": r["good"],
                "Bad": r["bad"],
                "Runbook": runbook_url(r.get("runbook")),
            }
        )
    return rows
