"""Approvals: replays that move money wait here for a second person."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._format import format_money_by_currency, format_time
from dashboards._views import call

TITLE = "Approvals"
MIN_ROLE = "approver"  # the navigation hides it from weaker roles

_FLASH = "ap_flash"


def _decide(verb: str) -> None:
    """The Approve / Reject callback: it runs before the page is drawn again, so the
    queue read below no longer holds a replay once it is decided."""
    chosen = st.session_state.get("ap_pick")
    note = st.session_state.get("ap_note") or None
    try:
        decide = data.approve_replay if verb == "approve" else data.reject_replay
        done = decide(str(chosen), note=note)
    except ControlApiError as exc:
        st.session_state[_FLASH] = ("error", f"Refused ({exc.status}): {exc.detail}")
        return
    past = "Approved" if verb == "approve" else "Rejected"
    st.session_state[_FLASH] = ("success", f"{past}; replay {chosen} is {done['state']}.")
    st.session_state["ap_note"] = ""


def queue_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The queue as a table: readable times and money per currency."""
    return [
        {
            "replay": r.get("replay_id"),
            "requested by": r.get("requested_by"),
            "requested at": format_time(r.get("requested_at")),
            "reason": r.get("reason"),
            "dead letters": r.get("total"),
            "to deliver": r.get("to_deliver"),
            "value": format_money_by_currency(r.get("value")),
        }
        for r in items
    ]


st.title("Approvals")
flash = st.session_state.pop(_FLASH, None)
if flash is not None:
    kind, text = flash
    (st.success if kind == "success" else st.error)(text)
me = call(data.whoami)
queue = call(data.approvals)
if not queue["items"]:
    st.success("Nothing waits for approval.")
    st.stop()

st.dataframe(queue_rows(queue["items"]), hide_index=True)

if me["role"] not in ("approver", "admin"):
    st.info("Approving needs the approver role (and someone other than the requester).")
    st.stop()
mine = {r["replay_id"] for r in queue["items"] if r["requested_by"] == me["name"]}
chosen = st.selectbox("Replay", [r["replay_id"] for r in queue["items"]], key="ap_pick")
if chosen in mine:
    st.warning("You requested this replay; a second person must approve it.")
    st.stop()
st.text_input("Note", key="ap_note")
approve, reject = st.columns(2)
approve.button("Approve", key="ap_approve", on_click=_decide, args=("approve",))
reject.button("Reject", key="ap_reject", on_click=_decide, args=("reject",))
