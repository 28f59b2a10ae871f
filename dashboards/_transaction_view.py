"""The Transactions page's detail view: one transaction's path across the systems."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from ._format import format_count, format_money, format_time
from ._lineage_view import causation_dot, milestone_rows, recovery_rows, trace_url
from ._tables import event_table
from ._timeline import STATUS_COLOURS, lane_of, timeline_chart

__all__ = ["STATE_FILTERS", "describe_transaction", "event_label", "show_transaction"]

#: The state filter's choices; "all" sends no filter.
STATE_FILTERS = ("all", "in_progress", "completed", "failed", "dead_lettered")


def describe_transaction(item: Mapping[str, Any]) -> str:
    """One line naming a transaction in a picker: order, customer, state, id."""
    parts = [
        str(item.get("order_ref") or "no order yet"),
        str(item.get("customer_name") or item.get("customer_id") or "unknown customer"),
        str(item.get("state") or "?"),
    ]
    return f"{' · '.join(parts)} ({item.get('correlation_id')})"


def event_label(index: int, event: Mapping[str, Any]) -> str:
    """``"3. erp · order.created · failed (attempt 2)"``."""
    return (
        f"{index + 1}. {lane_of(event)} · {event.get('kind')} · {event.get('status')}"
        f" (attempt {event.get('attempt') or 1})"
    )


def _show_events(correlation_id: str, events: Sequence[Mapping[str, Any]]) -> None:
    st.subheader("Path across the systems")
    st.altair_chart(timeline_chart(events), width="stretch")
    st.caption(
        "One lane per system; colour and shape give the status "
        f"({', '.join(STATUS_COLOURS)}). Grey lines join each step to its cause. "
        "Failed, retrying and dead-lettered steps are drawn larger."
    )
    milestones = milestone_rows(events)
    if milestones:
        st.markdown("**Latency between milestones**")
        st.dataframe(milestones, hide_index=True)

    graph, recovery, table = st.tabs(
        ["Causation graph", "Retries, dead letters, replays", "Events"]
    )
    with graph:
        st.graphviz_chart(causation_dot(events), width="stretch")
        st.caption("Each arrow runs from a cause to the event it caused, with the latency.")
    with recovery:
        rows = recovery_rows(events)
        if rows:
            st.dataframe(rows, hide_index=True)
        else:
            st.success("Every step succeeded at the first attempt; nothing was replayed.")
    with table:
        events_rows = event_table(events)
        config = {}
        if any(trace_url(e.get("trace_id")) for e in events):
            for row, event in zip(events_rows, events, strict=True):
                row["open trace"] = trace_url(event.get("trace_id"))
            config["open trace"] = st.column_config.LinkColumn(
                "open trace", display_text="open", help="The step's trace in the tracing backend"
            )
        st.dataframe(events_rows, hide_index=True, column_config=config)
        if not config:
            st.caption(
                "Each step's trace ID opens in a tracing backend when `INTERLOCK_TRACE_URL` is "
                "set (e.g. `http://127.0.0.1:16686/trace/{trace_id}` for Jaeger)."
            )

    st.subheader("Payload of a step")
    labels = [event_label(i, event) for i, event in enumerate(events)]
    problems = [i for i, e in enumerate(events) if e.get("status") != "ok"]
    chosen = st.selectbox(
        "Step",
        range(len(events)),
        index=problems[0] if problems else 0,
        format_func=lambda i: labels[i],
        key=f"payload_step:{correlation_id}",  # per transaction: its steps differ
    )
    event = events[chosen]
    error = event.get("error")
    if error:
        st.error(
            f"{error.get('reason')} ({'retriable' if error.get('retriable') else 'not retriable'}"
            f", HTTP {error.get('status_code') or '—'}, {error.get('error_type') or '—'}): "
            f"{error.get('message')}"
        )
    st.caption("PII is masked before it is stored; this is the stored payload.")
    st.json(event.get("payload") or {}, expanded=True)


def show_transaction(detail: Mapping[str, Any]) -> None:
    """Summary tiles, the swimlane timeline, the event table and a step's payload."""
    events: list[Mapping[str, Any]] = list(detail.get("events") or [])
    tiles = st.columns(5)
    tiles[0].metric("Order", str(detail.get("order_ref") or "—"))
    tiles[1].metric("Customer", str(detail.get("customer_name") or detail.get("customer_id")))
    tiles[2].metric("Amount", format_money(detail.get("amount"), detail.get("currency")))
    tiles[3].metric("State", str(detail.get("state")))
    tiles[4].metric(
        "Events",
        format_count(len(events)),
        help=f"{detail.get('failed_count', 0)} failed, "
        f"{detail.get('dead_letter_count', 0)} dead-lettered",
    )
    st.caption(
        f"Order `{detail.get('order_ref') or '—'}` · customer "
        f"`{detail.get('customer_name') or detail.get('customer_id') or '—'}` · "
        f"correlation ID `{detail.get('correlation_id')}` · started "
        f"{format_time(detail.get('started_at'))} · updated {format_time(detail.get('updated_at'))}"
    )
    if not events:
        st.info(
            "This transaction has no events stored yet — the collector may still be "
            "ingesting them; refresh in a few seconds."
        )
        return
    _show_events(str(detail.get("correlation_id")), events)
