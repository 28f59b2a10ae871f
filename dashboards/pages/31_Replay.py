"""Replay: choose dead letters, dry-run, request; follow a replay's progress."""

from __future__ import annotations

import json

import streamlit as st

from dashboards._client import ControlApiError, get_client
from dashboards._views import call

TITLE = "Replay"

st.title("Replay")
client = get_client()
me = call(client.get_json, "/api/v1/whoami")

if me["role"] in ("operator", "approver", "admin"):
    kind = st.radio(
        "Select by", ["event_id", "correlation_id", "group"], horizontal=True, key="rp_kind"
    )
    value = st.text_input(f"{kind}", key="rp_value")
    fixes = st.text_area(
        "Corrections (JSON, optional)", placeholder='{"sku_map": {"OLD": "NEW"}}', key="rp_fixes"
    )
    reason = st.text_input("Why (required to request)", key="rp_reason")
    body: dict[str, object] = {"selection": {kind: value.strip()}}
    try:
        if fixes.strip():
            body["corrections"] = json.loads(fixes)
    except ValueError as exc:
        st.error(f"Corrections are not JSON: {exc}")
        st.stop()
    dry, real = st.columns(2)
    try:
        if dry.button("Dry run", disabled=not value.strip(), key="rp_dry"):
            plan = client.post_json("/api/v1/replays", {**body, "dry_run": True})
            st.write(
                f"{plan['to_deliver']} to re-deliver, {plan['skipped']} skipped; "
                f"targets {plan['targets']}; approval needed: {plan['needs_approval']}"
            )
            st.dataframe(
                [
                    {
                        k: i[k]
                        for k in (
                            "dead_letter_id",
                            "target",
                            "idempotency_key",
                            "action",
                            "skip_reason",
                            "amount",
                            "currency",
                        )
                    }
                    for i in plan["items"]
                ],
                hide_index=True,
            )
        if real.button(
            "Request replay", disabled=not (value.strip() and reason.strip()), key="rp_request"
        ):
            made = client.post_json("/api/v1/replays", {**body, "dry_run": False, "reason": reason})
            st.success(f"Replay {made['replay_id']} is {made['state']}.")
    except ControlApiError as exc:
        st.error(f"Refused ({exc.status}): {exc.detail}")
else:
    st.info("Your role can follow replays here; requesting one needs the operator role.")

st.subheader("Replays")
replays = call(client.get_json, "/api/v1/replays", limit=50)
if not replays["items"]:
    st.caption("No replays yet.")
    st.stop()
cols = [
    "replay_id",
    "state",
    "requested_by",
    "decided_by",
    "total",
    "skipped",
    "delivered",
    "succeeded",
    "failed",
    "requested_at",
    "finished_at",
]
st.dataframe([{c: r.get(c) for c in cols} for r in replays["items"]], hide_index=True)
chosen = st.selectbox("Progress of", [r["replay_id"] for r in replays["items"]], key="rp_pick")
progress = call(client.get_json, f"/api/v1/replays/{chosen}")
done = progress["succeeded"] + progress["failed"] + progress["skipped"]
st.progress(
    min(1.0, done / max(1, progress["total"])),
    text=f"{progress['state']}: "
    f"{progress['succeeded']} succeeded, {progress['failed']} failed, "
    f"{progress['skipped']} skipped of {progress['total']}",
)
st.dataframe(progress["items"], hide_index=True)
