"""Operations home: SLA health, firing alerts, dead letters, backlog and adapters at a
glance, each linking to the page that acts on it. Refreshes itself in place."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboards import _data as data
from dashboards._home import (
    show_adapters,
    show_alerts,
    show_dead_letter_groups,
    show_sla_health,
    throughput_chart,
)
from dashboards._overview import show_kpis
from dashboards._tables import TRANSACTION_COLUMNS, shared_currency, transaction_table
from dashboards._views import call

TITLE = "Home"
REFRESH_CHOICES = {"off": None, "15 s": 15, "60 s": 60}

st.title("Operations home")
head, refresh = st.columns([4, 1])
every = refresh.selectbox(
    "Auto-refresh",
    list(REFRESH_CHOICES),
    index=1,
    key="home_refresh",
    help="Only this page's figures reload; filters and scroll position stay.",
)


@st.fragment(run_every=REFRESH_CHOICES[every])
def home() -> None:
    """Everything below the title; a fragment, so a refresh reruns only this part."""
    # Reads are cached for data.REFRESH_SECONDS (shorter than any refresh period), so a
    # refresh sees new figures without emptying the cache other sessions share.
    stats = call(data.stats)
    recent = call(data.transactions, limit=10)
    head.caption(f"As of {datetime.now(UTC):%H:%M:%S} UTC · refreshes every {every}")
    if not stats.get("transactions_total") and not stats.get("events_total"):
        st.info(
            "No transactions yet — is the traffic generator running? "
            "`make run` starts the demo landscape with traffic; events show up here "
            "within seconds."
        )
        return
    show_kpis(stats, currency=shared_currency(recent["items"], stats))

    sla, alerts = st.columns([3, 2])
    with sla:
        show_sla_health(call(data.optional, data.sla_rules))
    with alerts:
        show_alerts(call(data.optional, data.alerts))
        groups = call(data.optional, data.dead_letter_groups, state="open")
        show_dead_letter_groups(
            None if groups is None else groups["items"], stats.get("dead_letters_open", 0)
        )

    flow, adapters = st.columns([3, 2])
    with flow:
        st.subheader("Throughput")
        points = call(data.optional, data.throughput, hours=6, bucket_minutes=10)
        if points is None:
            st.caption("This collector serves no throughput figures (the explore API).")
        elif not points["points"]:
            st.caption("No events in the last 6 hours.")
        else:
            chart = throughput_chart(
                points["points"],
                window_start=points.get("window_start"),
                window_end=points.get("window_end"),
                bucket_seconds=float(points.get("bucket_seconds") or 600),
            )
            st.altair_chart(chart, width="stretch")
            st.caption("Events stored per 10 minutes by status, last 6 hours.")
    with adapters:
        checks = (call(data.health).get("checks") or {}) if stats else {}
        show_adapters(checks, call(data.optional, data.adapters, window_minutes=60))

    st.subheader("Recent transactions")
    st.dataframe(
        transaction_table(recent["items"]), hide_index=True, column_config=TRANSACTION_COLUMNS
    )
    st.caption(
        f"Newest {len(recent['items'])} of {recent['total']:,}; all on the Transactions page."
    )


home()
