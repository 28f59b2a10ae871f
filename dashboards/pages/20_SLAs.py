"""SLAs: every business SLA's compliance, error budget and burn rates, and one's history."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboards import _data as data
from dashboards._sla import MIN_OBSERVED_SHARE, sla_table, table_height
from dashboards._views import call

TITLE = "SLAs"

st.title("Business SLAs")
rules = call(data.sla_rules)
evaluated = [r for r in rules if r.get("evaluated_at")]
if not evaluated:
    st.info("The SLA evaluator has not run yet; statuses appear after its first tick.")
    st.stop()

table = sla_table(evaluated)
met = sum(1 for r in evaluated if r["sli"] >= r["objective"])
st.metric("SLAs meeting objective", f"{met} of {len(evaluated)}")
st.dataframe(
    table,
    hide_index=True,
    height=table_height(len(table)),  # every row, no inner scroll that hides the last ones
    column_config={
        **{c: st.column_config.NumberColumn(format="%.2f%%") for c in ("Objective", "Achieved")},
        "Runbook": st.column_config.LinkColumn("Runbook", display_text="open runbook"),
    },
)
st.caption(
    "Achieved is measured over each SLA's window; the budget left is the window's error "
    "budget after what the observed part of the window spent. A window with less than "
    f"{MIN_OBSERVED_SHARE:.0%} of its time observed says *too little data*."
)

st.subheader("History")
names = {r["name"]: r["rule_id"] for r in evaluated}
rules_by_id = {r["rule_id"]: r for r in evaluated}
chosen = st.selectbox("SLA", list(names))
if chosen:
    history = call(data.sla_history, names[chosen], limit=1440)
    if history:
        objective = rules_by_id[names[chosen]]["objective"] * 100
        points = [{"evaluated_at": h["evaluated_at"], "achieved": h["sli"] * 100} for h in history]
        line = (
            alt.Chart({"values": points})
            .mark_line(point=len(points) < 60)
            .encode(
                x=alt.X("evaluated_at:T", title="evaluated at (UTC)"),
                y=alt.Y("achieved:Q", scale=alt.Scale(zero=False), title="achieved (%)"),
                tooltip=[
                    alt.Tooltip("evaluated_at:T", format="%Y-%m-%d %H:%M"),
                    alt.Tooltip("achieved:Q", title="achieved %", format=".3f"),
                ],
            )
        )
        target = (
            alt.Chart({"values": [{"objective": objective}]})
            .mark_rule(strokeDash=[6, 4], color="#c62828")
            .encode(y="objective:Q")
        )
        st.altair_chart(line + target, width="stretch")
        st.caption(f"Dashed line: the objective, {objective:.2f} %.")
    else:
        st.caption("No stored evaluations in the last day.")
