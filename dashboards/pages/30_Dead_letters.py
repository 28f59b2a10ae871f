"""Dead letters: grouped by reason and step, filterable, each one inspectable."""

from __future__ import annotations

import streamlit as st

from dashboards._client import ControlApiError, get_client
from dashboards._views import call

TITLE = "Dead letters"
STATES = ["open", "replay_requested", "replaying", "resolved", "ignored"]
REASONS = [
    "",
    "validation",
    "mapping",
    "auth",
    "rate_limit",
    "downstream_unavailable",
    "conflict",
    "unknown",
]

st.title("Dead letters")
client = get_client()
me = call(client.get_json, "/api/v1/whoami")
left, mid, right = st.columns(3)
state = left.selectbox("State", STATES, key="dl_state")
reason = mid.selectbox("Reason", REASONS, key="dl_reason")
target = right.selectbox("Target system", ["", "erp", "billing", "support", "crm"], key="dl_target")
filters = {"state": state, "reason": reason, "target": target}
groups = call(client.get_json, "/api/v1/dead-letter-groups", **filters)
if not groups["items"]:
    st.success(f"No {state} dead letters{' for these filters' if reason or target else ''}.")
    st.stop()

for group in groups["items"]:
    st.markdown(f"- **{group['label']}** (`{group['group_id']}`)")
group_id = st.selectbox("Group", [g["group_id"] for g in groups["items"]], key="dl_group")
page = call(client.get_json, "/api/v1/dead-letters/search", group=group_id, **filters)
columns = [
    "event_id",
    "correlation_id",
    "reason",
    "error_message",
    "attempts",
    "amount",
    "currency",
    "first_failed_at",
    "last_failed_at",
    "state",
    "state_changed_by",
]
st.dataframe([{c: item.get(c) for c in columns} for item in page["items"]], hide_index=True)
st.caption(f"{len(page['items'])} of {page['total']} in this group.")

event_id = st.selectbox("Inspect", [i["event_id"] for i in page["items"]], key="dl_pick")
letter = call(client.get_json, f"/api/v1/dead-letters/{event_id}")
st.subheader(f"{letter['step']} → {letter['target']}: {letter['reason']}")
st.write(
    f"Error: {letter['error_message']} · attempts {letter['attempts']} · state {letter['state']}"
)
st.json(
    {
        "input_event (re-sent by a replay)": letter["input_event"],
        "dead_lettered_event": letter["event"],
    },
    expanded=False,
)

if me["role"] in ("operator", "approver", "admin") and letter["state"] == "open":
    with st.form("ignore"):
        why = st.text_input("Reason to ignore it", key="dl_ignore_reason")
        if st.form_submit_button("Ignore this dead letter"):
            try:
                client.post_json(f"/api/v1/dead-letters/{event_id}/ignore", {"reason": why})
                st.success("Ignored; recorded in the audit trail.")
            except ControlApiError as exc:
                st.error(f"Refused ({exc.status}): {exc.detail}")
st.caption("Replay a group or one dead letter on the Replay page.")
