"""Transactions: find one, then follow it across CRM, ERP, billing and support.

Link to one transaction with ``?cid=<correlation_id>``.
"""

from __future__ import annotations

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._tables import TRANSACTION_COLUMNS, transaction_table
from dashboards._transaction_view import STATE_FILTERS, describe_transaction, show_transaction
from dashboards._views import call, show_api_error

TITLE = "Transactions"

st.title("Transactions")


def _forget_pick() -> None:
    """New filters: show the newest match instead of the previously linked transaction."""
    st.query_params.pop("cid", None)
    st.session_state.pop("tx_pick", None)


def _remember_pick() -> None:
    """Keep the picked transaction in the URL, so it can be shared."""
    st.query_params["cid"] = st.session_state["tx_pick"]


state_col, q_col = st.columns([1, 3])
state = state_col.selectbox("State", STATE_FILTERS, key="tx_state", on_change=_forget_pick)
q = q_col.text_input(
    "Search",
    key="tx_q",
    on_change=_forget_pick,
    placeholder="correlation ID, order, customer, entity ID",
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

labels = {str(item["correlation_id"]): describe_transaction(item) for item in items}
options = list(labels)
if wanted and wanted not in labels:  # a linked transaction outside the current filter
    options.insert(0, wanted)
picked = st.session_state.get("tx_pick")
if picked not in options or (wanted and picked != wanted):
    # The filters no longer list it, or a link brought another ?cid= in.
    st.session_state.pop("tx_pick", None)
cid = st.selectbox(
    "Transaction",
    options,
    index=options.index(wanted) if wanted else 0,
    format_func=lambda c: labels.get(c, c),
    key="tx_pick",
    on_change=_remember_pick,
)

try:
    detail = data.transaction(cid)
except ControlApiError as exc:
    if exc.status != 404:
        show_api_error(exc)
    st.warning(f"No transaction `{cid}` — check the correlation ID, or search for it above.")
    st.stop()
show_transaction(detail)
