"""Reports: the executive SLA report for a period, with PDF and CSV downloads."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import streamlit as st

from dashboards._client import get_client
from dashboards._views import call

TITLE = "Reports"

PERIODS = {"Last 7 days": "last-7d", "Last 30 days": "last-30d", "Last full week": "week",
           "Last full month": "month", "Custom": "custom"}  # fmt: skip

st.title("Executive SLA report")
client = get_client()
label = st.selectbox("Period", list(PERIODS))
params: dict[str, Any] = {"period": PERIODS[label]}
if params["period"] == "custom":
    today = datetime.now(UTC).date()
    start, end = st.columns(2)
    first = start.date_input("From", today - timedelta(days=14))
    last = end.date_input("To (exclusive)", today)
    params["start"] = datetime.combine(first, time(), UTC).isoformat()
    params["end"] = datetime.combine(last, time(), UTC).isoformat()

report = call(client.get_json, "/api/v1/reports/sla", **params)
st.caption(f"{report['period']}: {report['start']} to {report['end']}")


def pct(value: float | None) -> float | None:
    return None if value is None else value * 100


rows = [
    {
        "SLA": r["name"],
        "Objective %": pct(r["objective"]),
        "Achieved %": pct(r["achieved"]),
        "Previous %": pct(r["previous"]),
        "Trend (pts)": pct(r["trend"]),
        "Budget used %": pct(r["budget_used"]),
        "Met": r["met"],
    }
    for r in report["rows"]
]
st.dataframe(rows, hide_index=True)
measured = [r for r in rows if r["Achieved %"] is not None]
if measured:
    chart = {k: [r[k] for r in measured] for k in ("SLA", "Achieved %", "Objective %")}
    st.bar_chart(chart, x="SLA", y=["Achieved %", "Objective %"], stack=False)

st.subheader("Top incidents by business impact")
if report["incidents"]:
    keep = ("rule_name", "severity", "opened_at", "duration_s", "value_at_risk",
            "customers_affected", "score")  # fmt: skip
    st.dataframe([{k: i[k] for k in keep} for i in report["incidents"]], hide_index=True)
else:
    st.caption("No SLA alerts in this period.")

pdf_col, csv_col = st.columns(2)
pdf_col.download_button(
    "Download PDF",
    call(client.get_bytes, "/api/v1/reports/sla", **params, format="pdf"),
    file_name=f"sla-report-{params['period']}.pdf",
    mime="application/pdf",
)
csv_col.download_button(
    "Download CSV",
    call(client.get_bytes, "/api/v1/reports/sla", **params, format="csv"),
    file_name=f"sla-report-{params['period']}.csv",
    mime="text/csv",
)
