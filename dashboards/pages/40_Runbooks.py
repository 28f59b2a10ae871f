"""Runbooks: what to do when Interlock pages you, served by the app.

Link to one with ``?name=<runbook>`` (``./Runbooks?name=retry-and-replay``); alerts, SLAs,
dead-letter groups and transactions link here.
"""

from __future__ import annotations

import streamlit as st

from dashboards._runbooks import runbook_name, runbook_names, runbook_text, runbook_title

TITLE = "Runbooks"

names = runbook_names()
if not names:
    st.title("Runbooks")
    st.warning("No runbooks are installed with this dashboard (`docs/runbooks/`).")
    st.stop()
wanted = runbook_name(st.query_params.get("name")) or names[0]


def _remember() -> None:
    st.query_params["name"] = st.session_state["rb_pick"]


if st.session_state.get("rb_pick") not in names or st.query_params.get("name"):
    st.session_state["rb_pick"] = wanted
st.selectbox("Runbook", names, key="rb_pick", format_func=runbook_title, on_change=_remember)
st.markdown(runbook_text(st.session_state["rb_pick"]))
