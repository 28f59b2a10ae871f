"""Adapters: per external system, request rate, errors by class, latency percentiles,
rate limiting, a circuit state derived from consecutive failures, last success, backlog."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboards import _data as data
from dashboards._adapters import (
    adapter_table,
    error_class_rows,
    latency_rows,
    quiet_text,
    split_by_calls,
    window_text,
)
from dashboards._views import call

TITLE = "Adapters"
WINDOWS = {"15 min": 15, "1 h": 60, "6 h": 360, "24 h": 1440}

st.title("Adapters")
window = st.selectbox("Window", list(WINDOWS), index=1, key="ad_window")
figures = call(data.optional, data.adapters, window_minutes=WINDOWS[window])
if figures is None:
    st.warning(
        "This collector does not serve adapter figures (the explore API). Mount "
        "`collector.api.explore_router` on the control API to see them."
    )
    st.stop()
checks = call(data.health).get("checks") or {}
systems = figures["systems"]
if not any(s["calls"] or s["inbound"] or s["last_success_at"] for s in systems):
    st.info(
        "No adapter has called out or received anything yet. Start traffic (`make run` "
        "includes a generator) and figures appear within a minute."
    )
    st.stop()

called, quiet = split_by_calls(systems)
if called:
    table, config = adapter_table(called, checks)
    st.dataframe(table, hide_index=True, column_config=config)
for system in quiet:
    st.markdown(f"- {quiet_text(system)} (health check: {checks.get(system['system'], '—')})")
st.caption(
    f"Window {window_text(figures)}. Circuit: {figures['circuit_note']}. "
    "Wait after 429 is the median time before the next attempt of the same step, so it "
    "shows whether Retry-After was honoured."
)

errors, latency = st.columns(2)
with errors:
    st.subheader("Errors by class")
    rows = error_class_rows(systems)
    if rows:
        chart = (
            alt.Chart({"values": rows})
            .mark_bar()
            .encode(
                x=alt.X("errors:Q", title="failed calls", axis=alt.Axis(tickMinStep=1, format="d")),
                y=alt.Y("system:N", title=None),
                color=alt.Color("reason:N", title="reason", legend=alt.Legend(orient="bottom")),
                tooltip=["system:N", "reason:N", "errors:Q"],
            )
        )
        st.altair_chart(chart, width="stretch")
    else:
        st.success("No failed call in this window.")
with latency:
    st.subheader("Latency percentiles")
    rows = latency_rows(systems)
    if rows:
        chart = (
            alt.Chart({"values": rows})
            .mark_bar()
            .encode(
                x=alt.X("ms:Q", title="call duration (ms)"),
                y=alt.Y("percentile:N", title=None, sort=["p50", "p95", "p99"]),
                row=alt.Row("system:N", title=None),
                color=alt.Color("percentile:N", legend=None),
                tooltip=["system:N", "percentile:N", alt.Tooltip("ms:Q", format=",.0f")],
            )
            .properties(height=60)
        )
        st.altair_chart(chart)
    else:
        st.caption("No timed call in this window.")
st.markdown("[Open dead letters by system →](./Dead_letters)")
