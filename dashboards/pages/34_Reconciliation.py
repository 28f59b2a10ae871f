"""Reconciliation: what the systems hold, compared per period; each discrepancy with its
value at risk and its repair (replay, re-sync or explain)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._format import format_money, format_money_by_currency, format_time
from dashboards._runbooks import runbook_link
from dashboards._views import call

TITLE = "Reconciliation"
ANY = "any"
KINDS = [
    ANY,
    "missing",
    "duplicate",
    "amount_mismatch",
    "currency_mismatch",
    "state_mismatch",
    "orphan",
]
_FLASH = "rc_flash"


def run_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs as a table: readable times, totals and money per currency."""
    return [
        {
            "run": r["run_id"],
            "started": format_time(r.get("started_at")),
            "period": r.get("period"),
            "trigger": r.get("trigger"),
            "status": r.get("status"),
            "open": r.get("discrepancies"),
            "explained": r.get("explained"),
            "in flight": r.get("in_flight"),
            "value at risk": format_money_by_currency(r.get("value_at_risk")) or "none",
        }
        for r in items
    ]


def discrepancy_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "class": d["kind"].replace("_", " "),
            "system": d["system"],
            "record": d["key"],
            "customer": d.get("customer_name") or d.get("customer_id") or "",
            "at risk": format_money(d["value_at_risk"], d.get("currency")),
            "what": d["detail"],
            "seen by Interlock": "yes" if d["seen_by_interlock"] else "never",
            "repair": "explained" if d.get("explained") else d["repair"],
        }
        for d in items
    ]


def _flash(kind: str, text: str) -> None:
    st.session_state[_FLASH] = (kind, text)


def _run_now() -> None:
    try:
        started = data.start_reconciliation(str(st.session_state.get("rc_period", "day")))
    except ControlApiError as exc:
        _flash("error", f"Refused ({exc.status}): {exc.detail}")
        return
    _flash("success", f"Reconciliation {started['run_id']} started; it reads every system.")


def _act(verb: str, run_id: str) -> None:
    chosen = str(st.session_state.get("rc_pick"))
    try:
        if verb == "explain":
            reason = str(st.session_state.get("rc_reason") or "").strip()
            data.explain_discrepancy(run_id, chosen, reason=reason)
            _flash("success", "Explained; later runs show it explained and do not count it.")
            st.session_state["rc_reason"] = ""
        else:
            done = data.resync_discrepancy(run_id, chosen)
            text = f"Re-read from its system: {done['events']} event(s) published."
            if done.get("dead_letter"):
                # A won deal never seen: its trigger is held until a replay (four eyes).
                text += f" Replay dead letter {done['dead_letter']} to start quote-to-cash."
            _flash("success", text)
    except ControlApiError as exc:
        _flash("error", f"Refused ({exc.status}): {exc.detail}")


st.title("Reconciliation")
st.caption(
    "What the CRM, the ERP, billing and the support desk hold, read from them and compared: "
    "what no event ever told Interlock shows here."
)
flash = st.session_state.pop(_FLASH, None)
if flash is not None:
    (st.success if flash[0] == "success" else st.error)(flash[1])
me = call(data.whoami)
runs = data.optional(data.reconciliations)
if runs is None:
    st.info("Reconciliation is not installed on this control API.")
    st.stop()
operator = me["role"] in ("operator", "approver", "admin")
if operator:
    left, right = st.columns([1, 3])
    left.selectbox("Period", ["day", "week", "month"], key="rc_period")
    right.button("Run now", key="rc_run", on_click=_run_now)
if not runs["items"]:
    st.info("No run yet. Runs start on their schedule, or with Run now.")
    st.stop()
st.dataframe(run_rows(runs["items"]), hide_index=True)
ids = [r["run_id"] for r in runs["items"]]
run_id = st.selectbox("Run", ids, key="rc_run_pick")
a, b = st.columns(2)
kind = a.selectbox("Class", KINDS, key="rc_kind")
system = b.selectbox("System", [ANY, "crm", "erp", "billing", "support"], key="rc_system")
run = call(
    data.reconciliation,
    str(run_id),
    kind=None if kind == ANY else kind,
    system=None if system == ANY else system,
)
if run["status"] == "running":
    st.info("This run is still reading the systems; reload in a moment.")
    st.stop()
if run["status"] == "failed":
    st.error(f"This run failed: {run.get('error')}")
    st.stop()
if not run["items"]:
    st.success("The systems agree for this period." if kind == ANY == system else "None here.")
    st.stop()
st.dataframe(discrepancy_rows(run["items"]), hide_index=True)
link = runbook_link("docs/runbooks/reconciliation.md")
if link:
    st.markdown(link)
if not operator:
    st.info("Repairing needs the operator role.")
    st.stop()
labels = {
    d["discrepancy_id"]: f"{d['kind']} · {d['system']} · {d['key']} "
    f"({format_money(d['value_at_risk'], d.get('currency'))})"
    for d in run["items"]
    if not d.get("explained")
}
if not labels:
    st.stop()
chosen = st.selectbox("Discrepancy", list(labels), format_func=lambda k: labels[k], key="rc_pick")
item = next(d for d in run["items"] if d["discrepancy_id"] == chosen)
if item["repair"] == "replay" and item.get("correlation_id"):
    st.markdown(
        f"Repair by replay: [open the transaction →](./Transactions?cid={item['correlation_id']})"
        " and replay it on the Replay page (dry run first)."
    )
elif item["repair"] == "resync":
    st.button("Re-sync from its system", key="rc_resync", on_click=_act, args=("resync", run_id))
st.text_input("Reason", key="rc_reason", placeholder="why this is right as it is")
st.button("Explain", key="rc_explain", on_click=_act, args=("explain", run_id))
