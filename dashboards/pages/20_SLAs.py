"""SLAs: every business SLA's compliance, error budget and burn rates, and one's history."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from dashboards._client import get_client
from dashboards._views import call

TITLE = "SLAs"

st.title("Business SLAs")
client = get_client()
rules = call(client.get_json, "/api/v1/sla")["rules"]
evaluated = [r for r in rules if r.get("evaluated_at")]
if not evaluated:
    st.info("The SLA evaluator has not run yet; statuses appear after its first tick.")
    st.stop()

table = [
    {
        "SLA": r["name"],
        "Impact tier": r["impact_tier"].replace("_", " "),
        "Objective": r["objective"] * 100,
        "Achieved (30d)": r["sli"] * 100,
        "Budget left": r["error_budget_remaining"] * 100,
        "Burn 1h": r["burn_rates"].get("1h", 0.0),
        "Burn 6h": r["burn_rates"].get("6h", 0.0),
        "Alert": r.get("firing") or "",
        "Good": r["good"],
        "Bad": r["bad"],
    }
    for r in evaluated
]
met = sum(1 for r in evaluated if r["sli"] >= r["objective"])
st.metric("SLAs meeting objective", f"{met} of {len(evaluated)}")
st.dataframe(
    table,
    hide_index=True,
    column_config={
        c: st.column_config.NumberColumn(format="%.2f%%")
        for c in ("Objective", "Achieved (30d)", "Budget left")
    },
)

st.subheader("History")
names = {r["name"]: r["rule_id"] for r in evaluated}
chosen = st.selectbox("SLA", list(names))
if chosen:
    history = call(client.get_json, f"/api/v1/sla/{names[chosen]}/history", limit=1440)["history"]
    if history:
        series = {
            "evaluated_at": [datetime.fromisoformat(h["evaluated_at"]) for h in history],
            "achieved %": [h["sli"] * 100 for h in history],
        }
        st.line_chart(series, x="evaluated_at", y="achieved %")
    else:
        st.caption("No stored evaluations in the last day.")
