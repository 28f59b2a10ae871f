"""The operations home's pieces: SLA health, alerts, dead-letter groups, adapters.

Pure functions turn API answers into rows; ``show_*`` draw one section each and link
to the page that acts on it. A section whose endpoint this collector does not serve
(``None``) says so and the rest of the page still renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import altair as alt
import streamlit as st

from ._adapters import NO_CALLS
from ._format import at_risk_text, format_count, format_duration_ms, format_money, parse_time
from ._runbooks import REASON_RUNBOOKS
from ._sla import runbook_url

__all__ = [
    "SLA_HEALTH_COLOURS",
    "adapter_rows",
    "alert_rows",
    "burn_chart",
    "group_rows",
    "show_adapters",
    "show_alerts",
    "show_dead_letter_groups",
    "show_sla_health",
    "sla_health",
    "sla_rows",
    "throughput_chart",
]

SLA_HEALTH_COLOURS = {"healthy": "#2e7d32", "burning": "#ef6c00", "breached": "#c62828"}
#: Metric labels: colour and an icon shape, so the state reads without colour too
#: (Material icons ship with Streamlit; no emoji font is needed).
_LABELS = {
    "healthy": ":green[:material/check_circle:] Healthy",
    "burning": ":orange[:material/local_fire_department:] Burning",
    "breached": ":red[:material/error:] Breached",
}


def sla_health(rule: Mapping[str, Any]) -> str:
    """``breached`` below objective, ``burning`` when an alert fires or the 1 h burn rate
    is above 1 (the budget goes faster than the window allows), else ``healthy``."""
    if not rule.get("evaluated_at") or rule.get("sli") is None:
        return "not evaluated"
    if float(rule["sli"]) < float(rule.get("objective") or 0):
        return "breached"
    burn = (rule.get("burn_rates") or {}).get("1h") or 0.0
    if rule.get("firing") or float(burn) > 1.0:
        return "burning"
    return "healthy"


def sla_rows(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per rule, worst first: health, achieved vs objective in %, burn rates."""
    order = {"breached": 0, "burning": 1, "healthy": 2, "not evaluated": 3}
    rows = []
    for rule in rules:
        health = sla_health(rule)
        burns = rule.get("burn_rates") or {}
        rows.append(
            {
                "health": health,
                "SLA": rule.get("name") or rule.get("rule_id"),
                "achieved %": None if rule.get("sli") is None else float(rule["sli"]) * 100,
                "objective %": float(rule.get("objective") or 0) * 100,
                "burn 1h": burns.get("1h"),
                "budget left %": None
                if rule.get("error_budget_remaining") is None
                else float(rule["error_budget_remaining"]) * 100,
                "_order": order[health],
            }
        )
    rows.sort(key=lambda r: (r["_order"], str(r["SLA"])))
    for row in rows:
        del row["_order"]
    return rows


def burn_chart(rules: Sequence[Mapping[str, Any]]) -> alt.Chart:
    """1 h burn rate per SLA as bars, with the rule at 1 (budget spent exactly on time)."""
    values = [
        {
            "SLA": r.get("name") or r.get("rule_id"),
            "burn": float((r.get("burn_rates") or {}).get("1h") or 0.0),
            "health": sla_health(r),
        }
        for r in rules
        if r.get("evaluated_at")
    ]
    bars = (
        alt.Chart({"values": values})
        .mark_bar()
        .encode(
            x=alt.X("burn:Q", title="burn rate, last hour (1 = on budget)"),
            y=alt.Y("SLA:N", title=None, sort="-x"),
            color=alt.Color(
                "health:N",
                scale=alt.Scale(
                    domain=list(SLA_HEALTH_COLOURS), range=list(SLA_HEALTH_COLOURS.values())
                ),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=["SLA:N", alt.Tooltip("burn:Q", format=".2f"), "health:N"],
        )
    )
    rule = alt.Chart({"values": [{"x": 1.0}]}).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    chart: alt.Chart = (bars + rule).properties(height=max(120, 28 * len(values)))
    return chart


def show_sla_health(rules: Sequence[Mapping[str, Any]] | None) -> None:
    """Counts of healthy, burning and breached SLAs, the worst first, a link to SLAs."""
    st.subheader("Business SLAs")
    if rules is None:
        st.caption("This collector serves no SLA API; install the SLA plug-in.")
        return
    evaluated = [r for r in rules if r.get("evaluated_at")]
    if not evaluated:
        st.info("The SLA evaluator has not run yet; SLA health shows after its first tick.")
        return
    counts = {h: sum(1 for r in evaluated if sla_health(r) == h) for h in SLA_HEALTH_COLOURS}
    tiles = st.columns(3)
    for tile, (health, n) in zip(tiles, counts.items(), strict=True):
        tile.metric(_LABELS[health], format_count(n, "SLA" if n == 1 else "SLAs"))
    st.dataframe(
        sla_rows(evaluated),
        hide_index=True,
        column_config={
            "achieved %": st.column_config.NumberColumn(format="%.2f %%"),
            "objective %": st.column_config.NumberColumn(format="%.2f %%"),
            "budget left %": st.column_config.NumberColumn(format="%.1f %%"),
            "burn 1h": st.column_config.NumberColumn(format="%.2f ×"),
        },
    )
    st.altair_chart(burn_chart(evaluated), width="stretch")
    st.markdown("[SLA trends and error budgets →](./SLAs)")


def alert_rows(alerts: Sequence[Mapping[str, Any]], limit: int = 5) -> list[dict[str, Any]]:
    """Firing alerts by impact score (the API's order), at most ``limit``."""
    rows = []
    for alert in [a for a in alerts if a.get("state") == "firing"][:limit]:
        rows.append(
            {
                "alert": alert.get("rule_name"),
                "severity": alert.get("severity"),
                "value at risk": at_risk_text(alert).removesuffix(" at risk"),
                "customers": alert.get("customers_affected"),
                "score": alert.get("score"),
                "since": (parse_time(alert.get("opened_at")) or None),
            }
        )
    return rows


def show_alerts(alerts: Sequence[Mapping[str, Any]] | None) -> None:
    """The firing alerts with the most business impact, linked to the Alerts page."""
    st.subheader("Firing alerts by impact")
    if alerts is None:
        st.caption("This collector serves no alerts API (the SLA plug-in).")
        return
    rows = alert_rows(alerts)
    if not rows:
        st.success("No SLA alert is firing.")
    else:
        firing = sum(1 for a in alerts if a.get("state") == "firing")
        for row in rows:
            row["since"] = row["since"].replace(tzinfo=None) if row["since"] else None
        st.dataframe(
            rows,
            hide_index=True,
            column_config={
                "score": st.column_config.NumberColumn(format="%.1f"),
                "since": st.column_config.DatetimeColumn("since (UTC)", format="YYYY-MM-DD HH:mm"),
            },
        )
        st.caption(f"Top {len(rows)} of {firing} firing.")
    st.markdown("[Acknowledge on Alerts →](./Alerts)")


def group_rows(groups: Sequence[Mapping[str, Any]], limit: int = 6) -> list[dict[str, Any]]:
    """Dead-letter groups, largest first, with their value per currency."""
    rows = []
    for group in groups[:limit]:
        value = group.get("value_by_currency") or {}
        rows.append(
            {
                "reason": group.get("reason"),
                "step": group.get("step"),
                "target": group.get("target"),
                "dead letters": group.get("count"),
                "transactions": group.get("transactions"),
                "value": ", ".join(format_money(v, c) for c, v in sorted(value.items())) or "—",
                "runbook": runbook_url(REASON_RUNBOOKS.get(str(group.get("reason")))),
            }
        )
    return rows


def show_dead_letter_groups(groups: Sequence[Mapping[str, Any]] | None, open_total: int) -> None:
    """Open dead letters grouped by reason and step, linked to the Dead letters page."""
    st.subheader("Open dead letters by group")
    if groups is None:
        st.caption(
            f"{format_count(open_total, 'open')}; this collector serves no grouping "
            "(the replay plug-in)."
        )
        return
    if not groups:
        st.success("No open dead letters.")
    else:
        st.dataframe(
            group_rows(groups),
            hide_index=True,
            column_config={
                "runbook": st.column_config.LinkColumn("runbook", display_text="open runbook")
            },
        )
        st.caption(f"{format_count(open_total, 'open dead letters')} in {len(groups)} groups.")
    st.markdown("[Inspect and replay on Dead letters →](./Dead_letters)")


def adapter_rows(
    checks: Mapping[str, Any], adapters: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Per system: the health check, derived circuit, error rate, p95 and last success."""
    figures = {s["system"]: s for s in (adapters or {}).get("systems", [])}
    # Every system the collector reports calls for (in lane order, ServiceNow or any other a
    # plug-in adds), then the shipped ones that only have a health check so far.
    shipped = [s for s in ("crm", "erp", "billing", "support") if s in checks]
    systems = list(dict.fromkeys([*figures, *shipped]))
    rows = []
    for system in systems:
        f = figures.get(system, {})
        rate = f.get("error_rate")
        none = NO_CALLS if not f.get("calls") else "—"
        p95 = (f.get("latency_ms") or {}).get("p95")
        rows.append(
            {
                "system": system,
                "health check": checks.get(system, "—"),
                "circuit (derived)": f.get("circuit", "—"),
                "calls/min": f.get("calls_per_minute"),
                "error rate": none if rate is None else f"{rate * 100:.1f} %",
                "p95 latency": none if p95 is None else format_duration_ms(p95),
                "429s": f.get("rate_limited"),
                "last success": f.get("last_success_at"),
            }
        )
    return rows


def show_adapters(checks: Mapping[str, Any], adapters: Mapping[str, Any] | None) -> None:
    """Adapters' health in one table, linked to the Adapters page."""
    st.subheader("Adapters")
    rows = adapter_rows(checks, adapters)
    if not rows:
        st.caption("No adapter health checks or calls reported yet.")
    else:
        for row in rows:
            when = parse_time(row["last success"])
            row["last success"] = when.replace(tzinfo=None) if when else None
        st.dataframe(
            rows,
            hide_index=True,
            column_config={
                "calls/min": st.column_config.NumberColumn(format="%.1f /min"),
                "last success": st.column_config.DatetimeColumn(
                    "last success (UTC)", format="HH:mm:ss"
                ),
            },
        )
    st.markdown("[Rates, latency and rate limits per system →](./Adapters)")


def throughput_chart(
    points: Sequence[Mapping[str, Any]],
    *,
    window_start: str | None = None,
    window_end: str | None = None,
    bucket_seconds: float = 60.0,
) -> alt.Chart:
    """Stacked events per bucket by status, coloured like the timeline.

    Each bar spans its whole bucket (``x`` to ``x2``), so 10-minute buckets read as
    10 minutes wide; the time axis runs over the requested window up to its end (now),
    not to the start of the last bucket; counts are whole numbers on the axis.
    """
    from ._timeline import STATUS_COLOURS

    statuses = list(STATUS_COLOURS)
    step = timedelta(seconds=bucket_seconds or 60.0)
    end = parse_time(window_end)
    values = []
    for p in points:
        at = parse_time(p["at"])
        if at is None:
            continue
        until = at + step if end is None else min(at + step, end)
        values.append(
            {
                "at": at.replace(tzinfo=None).isoformat(),
                "until": until.replace(tzinfo=None).isoformat(),
                "status": p["status"],
                "events": int(p["events"]),
            }
        )
    start = parse_time(window_start)
    scale = (
        alt.Scale(
            domain=[start.replace(tzinfo=None).isoformat(), end.replace(tzinfo=None).isoformat()]
        )
        if start is not None and end is not None
        else alt.Undefined
    )
    minutes = max(1, round(step.total_seconds() / 60))
    chart: alt.Chart = (
        alt.Chart({"values": values})
        .mark_bar()
        .encode(
            x=alt.X("at:T", title="time (UTC)", scale=scale, axis=alt.Axis(format="%H:%M")),
            x2="until:T",
            y=alt.Y(
                "events:Q",
                title=f"events per {minutes} min",
                stack="zero",
                axis=alt.Axis(format="d", tickMinStep=1),
            ),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=statuses, range=[STATUS_COLOURS[s] for s in statuses]),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=[
                alt.Tooltip("at:T", title="from", format="%H:%M"),
                alt.Tooltip("until:T", title="until", format="%H:%M"),
                "status:N",
                "events:Q",
            ],
        )
        .properties(height=220)
    )
    return chart
