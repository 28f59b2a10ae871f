"""Approvals: replays that move money wait here for a second person."""

from __future__ import annotations

import streamlit as st

from dashboards._client import ControlApiError, get_client
from dashboards._views import call

TITLE = "Approvals"
MIN_ROLE = "approver"  # the navigation hides it from weaker roles

st.title("Approvals")
client = get_client()
me = call(client.get_json, "/api/v1/whoami")
queue = call(client.get_json, "/api/v1/approvals")
if not queue["items"]:
    st.success("Nothing waits for approval.")
    st.stop()

cols = ["replay_id", "requested_by", "requested_at", "reason", "total", "to_deliver", "value"]
st.dataframe([{c: r.get(c) for c in cols} for r in queue["items"]], hide_index=True)

if me["role"] not in ("approver", "admin"):
    st.info("Approving needs the approver role (and someone other than the requester).")
    st.stop()
mine = {r["replay_id"] for r in queue["items"] if r["requested_by"] == me["name"]}
chosen = st.selectbox("Replay", [r["replay_id"] for r in queue["items"]], key="ap_pick")
if chosen in mine:
    st.warning("You requested this replay; a second person must approve it.")
    st.stop()
note = st.text_input("Note", key="ap_note")
approve, reject = st.columns(2)
try:
    if approve.button("Approve", key="ap_approve"):
        done = client.post_json(f"/api/v1/replays/{chosen}/approve", {"note": note or None})
        st.success(f"Approved; replay {chosen} is {done['state']}.")
    if reject.button("Reject", key="ap_reject"):
        done = client.post_json(f"/api/v1/replays/{chosen}/reject", {"note": note or None})
        st.success(f"Rejected; replay {chosen} is {done['state']}.")
except ControlApiError as exc:
    st.error(f"Refused ({exc.status}): {exc.detail}")
