"""Reports: the executive SLA report for a period, with PDF and CSV downloads."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import altair as alt
import streamlit as st

from dashboards import _data as data
from dashboards._format import format_time
from dashboards._report import drift_rows, incident_rows, report_rows
from dashboards._sla import table_height
from dashboards._views import call

TITLE = "Reports"

PERIODS = {"Last 7 days": "last-7d", "Last 30 days": "last-30d", "Last full week": "week",
           "Last full month": "month", "Custom": "custom"}  # fmt: skip

st.title("Executive SLA report")
label = st.selectbox("Period", list(PERIODS))
params: dict[str, Any] = {"period": PERIODS[label]}
if params["period"] == "custom":
    today = datetime.now(UTC).date()
    start, end = st.columns(2)
    first = start.date_input("From", today - timedelta(days=14))
    last = end.date_input("To (exclusive)", today)
    params["start"] = datetime.combine(first, time(), UTC).isoformat()
    params["end"] = datetime.combine(last, time(), UTC).isoformat()

report = call(data.sla_report, **params)
st.caption(f"{report['period']}: {format_time(report['start'])} to {format_time(report['end'])}")


rows = report_rows(report["rows"])
st.dataframe(rows, hide_index=True, height=table_height(len(rows)))
st.caption(
    "Previous: the period of equal length before this one; *no data* where nothing was "
    "measured then. Trend: achieved minus previous, in percentage points."
)
measured = [r for r in report["rows"] if r["achieved"] is not None]
if measured:
    # Horizontal bars read with long SLA names; the tick is the objective.
    values = [
        {"SLA": r["name"], "achieved": r["achieved"] * 100, "objective": r["objective"] * 100,
         "met": "met" if r["met"] else "missed"}
        for r in measured
    ]  # fmt: skip
    base = alt.Chart({"values": values}).encode(
        y=alt.Y("SLA:N", title=None, sort=None, axis=alt.Axis(labelLimit=260))
    )
    bars = base.mark_bar().encode(
        x=alt.X("achieved:Q", title="achieved (%)", scale=alt.Scale(zero=False)),
        color=alt.Color(
            "met:N",
            scale=alt.Scale(domain=["met", "missed"], range=["#2e7d32", "#c62828"]),
            legend=alt.Legend(orient="bottom", title=None),
        ),
        tooltip=["SLA:N", alt.Tooltip("achieved:Q", format=".3f"), "objective:Q"],
    )
    ticks = base.mark_tick(thickness=3, size=22, color="#616161").encode(x="objective:Q")
    st.altair_chart((bars + ticks).properties(height=36 * len(values)), width="stretch")
    st.caption("Bars: achieved in the period; grey ticks: the objective.")

st.subheader("Top incidents by business impact")
if report["incidents"]:
    st.dataframe(incident_rows(report["incidents"]), hide_index=True)
else:
    st.caption("No SLA alerts in this period.")

st.subheader("Reconciliation drift")
drift = report.get("drift")
if drift:
    st.dataframe(drift_rows(drift), hide_index=True)
    st.caption(
        "What the latest completed reconciliation run of each period (day, week, month) "
        "finished in the period left open at its end, each discrepancy once; explained ones "
        "do not count. Runs: started in the period."
    )
else:
    st.caption("Reconciliation is not installed: no runs to report.")

# Built when clicked, not on every render: a PDF of a month of SLAs takes a second.
pdf_col, csv_col = st.columns(2)
pdf_col.download_button(
    "Download PDF",
    lambda: data.sla_report_file("pdf", **params),
    file_name=f"sla-report-{params['period']}.pdf",
    mime="application/pdf",
)
csv_col.download_button(
    "Download CSV",
    lambda: data.sla_report_file("csv", **params),
    file_name=f"sla-report-{params['period']}.csv",
    mime="text/csv",
)
