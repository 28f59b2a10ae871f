"""Replay: choose dead letters, dry-run, request; follow a replay's progress."""

from __future__ import annotations

import json

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._replay import newest_first, plan_rows, plan_text, replay_rows
from dashboards._views import call

TITLE = "Replay"

st.title("Replay")
me = call(data.whoami)

if me["role"] in ("operator", "approver", "admin"):
    kind = st.radio(
        "Select by", ["event_id", "correlation_id", "group"], horizontal=True, key="rp_kind"
    )
    value = st.text_input(f"{kind}", key="rp_value")
    fixes = st.text_area(
        "Corrections (JSON, optional)", placeholder='{"sku_map": {"OLD": "NEW"}}', key="rp_fixes"
    )
    reason = st.text_input("Why (required to request)", key="rp_reason")
    selection = {kind: value.strip()}
    corrections: dict[str, object] | None = None
    try:
        if fixes.strip():
            corrections = json.loads(fixes)
    except ValueError as exc:
        st.error(f"Corrections are not JSON: {exc}")
        st.stop()
    dry, real = st.columns(2)
    try:
        if dry.button("Dry run", disabled=not value.strip(), key="rp_dry"):
            plan = data.plan_replay(selection, corrections=corrections)
            st.write(plan_text(plan))
            st.dataframe(plan_rows(plan["items"]), hide_index=True)
        if real.button(
            "Request replay", disabled=not (value.strip() and reason.strip()), key="rp_request"
        ):
            made = data.request_replay(selection, reason=reason, corrections=corrections)
            st.success(f"Replay {made['replay_id']} is {made['state']}.")
            # Follow the new replay below, not the one picked before (and read afresh).
            st.session_state["rp_pick"] = made["replay_id"]
    except ControlApiError as exc:
        st.error(f"Refused ({exc.status}): {exc.detail}")
else:
    st.info("Your role can follow replays here; requesting one needs the operator role.")

st.subheader("Replays")
replays = call(data.replays, limit=50)
if not replays["items"]:
    st.caption("No replays yet.")
    st.stop()
items = newest_first(replays["items"])
st.dataframe(replay_rows(items), hide_index=True)
ids = [r["replay_id"] for r in items]
if st.session_state.get("rp_pick") not in ids:
    st.session_state.pop("rp_pick", None)  # the newest, until the user picks another
chosen = st.selectbox("Progress of", ids, index=0, key="rp_pick")
progress = call(data.replay, chosen)
done = progress["succeeded"] + progress["failed"] + progress["skipped"]
st.progress(
    min(1.0, done / max(1, progress["total"])),
    text=f"{progress['state']}: "
    f"{progress['succeeded']} succeeded, {progress['failed']} failed, "
    f"{progress['skipped']} skipped of {progress['total']}",
)
st.dataframe(progress["items"], hide_index=True)
