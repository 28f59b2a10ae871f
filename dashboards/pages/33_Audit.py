"""Audit: every control action, hash-chained, with a check of the whole chain."""

from __future__ import annotations

import streamlit as st

from dashboards import _data as data
from dashboards._format import audit_details, format_time
from dashboards._views import call

TITLE = "Audit"

st.title("Audit trail")
verdict = call(data.audit_verify)
if verdict["ok"]:
    if verdict["entries"]:
        st.success(f"Chain intact: {verdict['entries']} entries, head at {verdict['head_seq']}.")
    else:  # a fresh install: nothing audited yet, so there is no head to name
        st.success("Chain intact: no entries yet.")
else:
    st.error("Chain TAMPERED: " + "; ".join(verdict["problems"]))
for warning in verdict["warnings"]:
    st.warning(warning)

action = st.selectbox(
    "Action",
    [
        "",
        "replay.request",
        "replay.approve",
        "replay.reject",
        "replay.execute",
        "dead_letter.ignore",
        "dead_letter.resolve",
        "alert.acknowledge",
    ],
    key="au_action",
)
entries = call(data.audit, action=action, limit=200)
rows = [
    {
        "seq": e["seq"],
        "at": format_time(e["at"]),
        "who": f"{e['actor']} ({e['role']})",
        "action": e["action"],
        "subject": e["subject"],
        "why": e["why"],
        "outcome": e["outcome"],
        "hash": e["hash"][:12],
    }
    for e in entries["items"]
]
st.dataframe(rows, hide_index=True)
st.caption(f"{len(rows)} of {entries['total']} entries, newest first.")
if entries["items"]:
    by_seq = {e["seq"]: e for e in entries["items"]}
    seq = st.selectbox(
        "Details of entry",
        list(by_seq),
        format_func=lambda n: f"#{n} {by_seq[n]['action']} {by_seq[n]['subject'] or ''}".strip(),
        key="au_entry",
    )
    chosen = by_seq[seq]
    st.markdown(
        f"**#{chosen['seq']} {chosen['action']}** by {chosen['actor']} ({chosen['role']}) "
        f"at {format_time(chosen['at'])}: {chosen['outcome']}"
    )
    details = audit_details(chosen.get("what") or {})
    if details:
        st.dataframe(details, hide_index=True)
    else:
        st.caption("No further details recorded.")
