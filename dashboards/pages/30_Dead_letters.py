"""Dead letters: grouped by reason and step, filterable, each one inspectable."""

from __future__ import annotations

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._replay import plan_text
from dashboards._runbooks import REASON_RUNBOOKS, runbook_link
from dashboards._views import call

TITLE = "Dead letters"
STATES = ["open", "replay_requested", "replaying", "resolved", "ignored"]
ANY = "any"
REASONS = [
    ANY,
    "validation",
    "mapping",
    "auth",
    "rate_limit",
    "downstream_unavailable",
    "conflict",
    "unknown",
]

st.title("Dead letters")
me = call(data.whoami)
left, mid, right = st.columns(3)
state = left.selectbox("State", STATES, key="dl_state")
# "any" is an option of its own: an empty one shows as "Choose an option".
reason = mid.selectbox(
    "Reason", REASONS, key="dl_reason", format_func=lambda r: "any reason" if r == ANY else r
)
# The installed systems (a second support desk too); the shipped four if none are served.
targets = [s for s in data.lanes() if s != "interlock"] or ["erp", "billing", "support", "crm"]
target = right.selectbox(
    "Target system",
    [ANY, *targets],
    key="dl_target",
    format_func=lambda t: "any system" if t == ANY else t,
)
filters: dict[str, str | None] = {
    "state": state,
    "reason": None if reason == ANY else reason,
    "target": None if target == ANY else target,
}
groups = call(data.dead_letter_groups, **filters)
if not groups["items"]:
    narrowed = filters["reason"] or filters["target"]
    st.success(f"No {state} dead letters{' for these filters' if narrowed else ''}.")
    st.stop()

for group in groups["items"]:
    link = runbook_link(REASON_RUNBOOKS.get(str(group.get("reason"))))
    st.markdown(f"- **{group['label']}** (`{group['group_id']}`)" + (f" · {link}" if link else ""))
group_id = st.selectbox("Group", [g["group_id"] for g in groups["items"]], key="dl_group")
page = call(
    data.dead_letters,
    group=group_id,
    state=filters["state"],
    reason=filters["reason"],
    target=filters["target"],
)
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
letter = call(data.dead_letter, event_id)
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

if me["role"] not in ("operator", "approver", "admin"):
    st.info("Replaying, resolving or ignoring a dead letter needs the operator role.")
elif letter["state"] != "open":
    st.caption(f"This dead letter is {letter['state']}; only an open one can be acted on.")
else:
    st.subheader("Act on it")
    replay_one, replay_group, close = st.tabs(
        ["Replay this one", f"Replay the group ({page['total']})", "Resolve or ignore"]
    )
    for tab, selection, key in (
        (replay_one, {"event_id": event_id}, "one"),
        (replay_group, {"group": group_id}, "group"),
    ):
        with tab, st.form(f"dl_replay_{key}"):
            why = st.text_input("Why (recorded in the audit trail)", key=f"dl_replay_why_{key}")
            dry = st.form_submit_button("Dry run")
            go = st.form_submit_button("Request the replay")
            if dry or go:
                try:
                    if dry:
                        plan = data.plan_replay(selection)
                        st.success(plan_text(plan))
                    elif not why.strip():
                        st.error("Say why: a replay request needs a reason.")
                    else:
                        made = data.request_replay(selection, reason=why)
                        st.success(
                            f"Replay `{made['replay_id']}` is {made['state']}; follow it on the "
                            "[Replay page](./Replay)."
                        )
                except ControlApiError as exc:
                    st.error(f"Refused ({exc.status}): {exc.detail}")
    with close, st.form("dl_close"):
        why = st.text_input("Reason (recorded in the audit trail)", key="dl_close_reason")
        resolve = st.form_submit_button("Resolve: fixed outside Interlock")
        ignore = st.form_submit_button("Ignore: nothing to do")
        if resolve or ignore:
            close_letter = data.resolve_dead_letter if resolve else data.ignore_dead_letter
            try:
                close_letter(event_id, reason=why)
            except ControlApiError as exc:
                st.error(f"Refused ({exc.status}): {exc.detail}")
            else:
                st.success(f"{'Resolved' if resolve else 'Ignored'}; recorded in the audit trail.")
