"""Transactions: find one by any ID it carries, then follow it across CRM, ERP, billing
and support; an operator can dry-run a replay of its dead letters from here.

Link to one transaction with ``?cid=<correlation_id>``.
"""

from __future__ import annotations

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._replay import plan_rows, plan_text
from dashboards._runbooks import REASON_RUNBOOKS, runbook_link
from dashboards._session import can, current
from dashboards._tables import TRANSACTION_COLUMNS, transaction_table
from dashboards._transaction_view import STATE_FILTERS, describe_transaction, show_transaction
from dashboards._views import call, show_api_error

TITLE = "Transactions"

st.title("Transactions")


def _forget_pick() -> None:
    """New filters: show the newest match instead of the previously linked transaction."""
    st.query_params.pop("cid", None)


def _remember_pick(key: str) -> None:
    """Keep the picked transaction in the URL, so it can be shared."""
    st.query_params["cid"] = st.session_state[key]


state_col, q_col = st.columns([1, 3])
state = state_col.selectbox("State", STATE_FILTERS, key="tx_state", on_change=_forget_pick)
q = q_col.text_input(
    "Search",
    key="tx_q",
    on_change=_forget_pick,
    placeholder="correlation ID, opportunity, account, ERP order or invoice, subscription, "
    "ticket, customer name",
    help="Matches part of the correlation ID, the customer's name or account ID, or the ID "
    "of anything the transaction touched: Salesforce opportunity, ERP order or invoice "
    "number, billing subscription or invoice ID, support ticket.",
)
page = call(data.transactions, limit=200, state=None if state == "all" else state, q=q)
items = page["items"]
wanted = st.query_params.get("cid")

if not items:
    if state != "all" or q:
        st.info("No transaction matches these filters — clear the search or pick another state.")
    else:
        st.info(
            "No transactions yet — is the traffic generator running? `make run` starts the "
            "demo landscape; transactions appear here within seconds."
        )
    if not wanted:
        st.stop()
else:
    st.dataframe(transaction_table(items), hide_index=True, column_config=TRANSACTION_COLUMNS)
    st.caption(f"Showing {len(items)} of {page['total']:,}; click a column header to sort.")
    if any(item.get("state") == "stalled" for item in items) and (link := runbook_link("stalled")):
        st.markdown(link)  # overdue with no dead letter: what to do about them

labels = {str(item["correlation_id"]): describe_transaction(item) for item in items}
options = list(labels)
if wanted and wanted not in labels:  # a linked transaction outside the current filter
    options.insert(0, wanted)
# One picker per filter: a browser keeps a widget's last value, and a pick from the
# previous search must not come back as the value of the new one.
pick_key = f"tx_pick:{state}:{q}"
picked = st.session_state.get(pick_key)
if picked not in options or (wanted and picked != wanted):
    # The filters no longer list it, or a link brought another ?cid= in.
    st.session_state.pop(pick_key, None)
cid = st.selectbox(
    "Transaction",
    options,
    index=options.index(wanted) if wanted else 0,
    format_func=lambda c: labels.get(c, c),
    key=pick_key,
    on_change=_remember_pick,
    args=(pick_key,),
)
if cid not in options:  # never act on a value the list does not hold
    cid = options[0]

try:
    detail = data.transaction(cid)
except ControlApiError as exc:
    if exc.status != 404:
        show_api_error(exc)
    st.warning(f"No transaction `{cid}` — check the correlation ID, or search for it above.")
    st.stop()
show_transaction(detail)
if detail.get("state") != "completed":
    # A stalled or failed transaction: the runbook for why it stopped.
    reasons = [str((e.get("error") or {}).get("reason")) for e in detail.get("events") or []
               if e.get("status") in ("dead_lettered", "failed") and e.get("error")]  # fmt: skip
    if detail.get("state") == "stalled":  # overdue with no open dead letter
        name: str | None = "stalled"
    else:
        name = REASON_RUNBOOKS.get(reasons[-1]) if reasons else "manual-intervention"
    if link := runbook_link(name):
        st.markdown(link)

ALL_STATES = "open,replay_requested,replaying,resolved,ignored"
letters = call(data.dead_letters, correlation_id=cid, state=ALL_STATES)
if letters is not None and letters["items"]:
    st.subheader("Dead letters of this transaction")
    keep = ("event_id", "step", "target", "reason", "error_message", "attempts", "state")
    st.dataframe([{k: d.get(k) for k in keep} for d in letters["items"]], hide_index=True)
    unresolved = [d for d in letters["items"] if d.get("state") == "open"]
    me = current()
    if not unresolved:
        st.caption("None is open; replays and resolutions are on the Replay and Audit pages.")
    elif can(me, "operator"):
        if st.button("Dry-run a replay of this transaction", key="tx_dry_run"):
            try:
                plan = data.plan_replay({"correlation_id": cid})
            except ControlApiError as exc:
                st.error(f"Dry run refused ({exc.status}): {exc.detail}")
            else:
                st.success(plan_text(plan))
                st.dataframe(plan_rows(plan["items"]), hide_index=True)
        st.markdown("[Request the replay on the Replay page →](./Replay)")
    else:
        st.info("Replaying needs the operator role: sign in with an operator token.")
