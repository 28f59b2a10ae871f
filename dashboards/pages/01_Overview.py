"""Overview: the whole landscape at a glance, from ``/api/v1/stats``."""

from __future__ import annotations

import streamlit as st

from dashboards import _data as data
from dashboards._overview import count_rows, show_kpis, state_chart
from dashboards._tables import TRANSACTION_COLUMNS, shared_currency, transaction_table
from dashboards._views import call

TITLE = "Overview"

st.title("Interlock overview")
stats = call(data.stats)
recent = call(data.transactions, limit=10)

if not stats.get("transactions_total") and not stats.get("events_total"):
    st.info(
        "No transactions yet — is the traffic generator running? "
        "`make run` starts the demo landscape with traffic; events show up here within seconds."
    )
    st.stop()

show_kpis(stats, currency=shared_currency(recent["items"], stats))

chart, systems, statuses = st.columns([2, 1, 1])
chart.subheader("Transactions by state")
chart.altair_chart(state_chart(stats), width="stretch")
systems.subheader("Events by system")
systems.dataframe(count_rows(stats.get("events_by_system") or {}, "system"), hide_index=True)
statuses.subheader("Events by status")
statuses.dataframe(count_rows(stats.get("events_by_status") or {}, "status"), hide_index=True)

st.subheader("Recent transactions")
st.dataframe(transaction_table(recent["items"]), hide_index=True, column_config=TRANSACTION_COLUMNS)
st.caption(f"Newest {len(recent['items'])} of {recent['total']:,}; all on the Transactions page.")
