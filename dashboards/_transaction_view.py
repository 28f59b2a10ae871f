"""The Transactions page's detail view: one transaction's path across the systems."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import streamlit as st

from . import _data as data
from ._format import format_count, format_money, format_time
from ._lineage_view import causation_dot, customer_of, milestone_rows, recovery_rows, trace_url
from ._tables import event_table
from ._timeline import STATUS_COLOURS, lane_of, timeline_chart

__all__ = [
    "STATE_FILTERS",
    "describe_transaction",
    "event_label",
    "recovered_attempts",
    "show_transaction",
    "summary_items",
    "waiting_line",
]

#: The state filter's choices; "all" sends no filter.
STATE_FILTERS = ("all", "in_progress", "completed", "failed", "dead_lettered", "stalled")

#: Transaction state -> badge colour (Streamlit's palette), so the state reads at a glance.
_Colour = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray"]
_STATE_BADGES: dict[str, _Colour] = {
    "completed": "green",
    "in_progress": "blue",
    "failed": "red",
    "dead_lettered": "violet",
    # Overdue at its next step with no dead letter: nobody is looking at it.
    "stalled": "orange",
}

#: Characters Markdown would treat as formatting in a value shown as bold text.
_MARKDOWN_SPECIALS = "\\`*_[]<>|~$"


def describe_transaction(item: Mapping[str, Any]) -> str:
    """One line naming a transaction in a picker: order, customer, state, id."""
    parts = [
        str(item.get("order_ref") or "no order yet"),
        customer_of(item),
        str(item.get("state") or "?"),
    ]
    return f"{' · '.join(parts)} ({item.get('correlation_id')})"


def summary_items(detail: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The summary row as (label, full value) pairs: short labels, nothing truncated."""
    events = detail.get("events") or []
    counts = [format_count(len(events))]
    for key, word in (("failed_count", "failed"), ("dead_letter_count", "dead-lettered")):
        if detail.get(key):
            counts.append(f"{detail[key]} {word}")
    return [
        ("Order", str(detail.get("order_ref") or "no order yet")),
        ("Customer", customer_of(detail)),
        ("Amount", format_money(detail.get("amount"), detail.get("currency"))),
        ("State", str(detail.get("state") or "?")),
        ("Events", " · ".join(counts)),
    ]


def recovered_attempts(events: Sequence[Mapping[str, Any]]) -> set[int]:
    """Indexes of failed or retrying attempts of a step that a later attempt of the same
    step completed (``ok`` or ``replayed``): history, not a problem to show in red.

    >>> recovered_attempts([{"step": "s", "status": "retrying"}, {"step": "s", "status": "ok"},
    ...                     {"step": "t", "status": "dead_lettered"}])
    {0}
    """
    done_after: set[str] = set()
    found: set[int] = set()
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        step = str(event.get("step"))
        if event.get("status") in ("ok", "replayed"):
            done_after.add(step)
        elif step in done_after:
            found.add(index)
    return found


def _bold(value: str) -> str:
    escaped = "".join(f"\\{c}" if c in _MARKDOWN_SPECIALS else c for c in value)
    return f"**{escaped}**"


def _show_summary(detail: Mapping[str, Any]) -> None:
    """A compact row of label-over-value pairs: values wrap instead of being cut off."""
    items = summary_items(detail)
    # The customer's name is the longest value; give it the widest column.
    columns = st.columns([3, 4, 3, 2, 3], gap="small")
    for column, (label, value) in zip(columns, items, strict=True):
        column.caption(label)
        if label == "State":
            column.badge(value.replace("_", " "), color=_STATE_BADGES.get(value, "gray"))
        else:
            column.markdown(_bold(value))
    account = detail.get("customer_id")
    shown_id = f"CRM account `{account}` · " if account and account != items[1][1] else ""
    st.caption(
        f"{shown_id}correlation ID `{detail.get('correlation_id')}` · started "
        f"{format_time(detail.get('started_at'))} · updated {format_time(detail.get('updated_at'))}"
    )
    waiting = waiting_line(detail)
    if waiting:
        (st.warning if detail.get("state") == "stalled" else st.caption)(waiting)


def waiting_line(detail: Mapping[str, Any]) -> str | None:
    """``"Waits for erp.order.confirm since … (due …)"``, or None when it waits for nothing."""
    step = detail.get("waiting_step")
    if not step:
        return None
    line = (
        f"Waits for `{step}` since {format_time(detail.get('waiting_since'))} "
        f"(due {format_time(detail.get('due_at'))})"
    )
    if detail.get("state") == "stalled":
        return line + ": overdue with no open dead letter — see the stalled runbook."
    return line


def event_label(index: int, event: Mapping[str, Any]) -> str:
    """``"3. erp · order.created · failed (attempt 2)"``."""
    return (
        f"{index + 1}. {lane_of(event)} · {event.get('kind')} · {event.get('status')}"
        f" (attempt {event.get('attempt') or 1})"
    )


def _show_events(correlation_id: str, events: Sequence[Mapping[str, Any]]) -> None:
    st.subheader("Path across the systems")
    st.altair_chart(timeline_chart(events, lanes=data.lanes()), width="stretch")
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
    recovered = recovered_attempts(events)
    problems = [i for i, e in enumerate(events) if e.get("status") != "ok" and i not in recovered]
    chosen = st.selectbox(
        "Step",
        range(len(events)),
        index=problems[0] if problems else 0,
        format_func=lambda i: labels[i],
        key=f"payload_step:{correlation_id}",  # per transaction: its steps differ
    )
    event = events[chosen]
    error = event.get("error")
    if error and chosen in recovered:
        st.info(
            f"Attempt {event.get('attempt') or 1} failed ({error.get('reason')}, HTTP "
            f"{error.get('status_code') or '—'}: {error.get('message')}); a later attempt of "
            f"{event.get('step')} succeeded, so nothing is left to fix."
        )
    elif error:
        st.error(
            f"{error.get('reason')} ({'retriable' if error.get('retriable') else 'not retriable'}"
            f", HTTP {error.get('status_code') or '—'}, {error.get('error_type') or '—'}): "
            f"{error.get('message')}"
        )
    st.caption("PII is masked before it is stored; this is the stored payload.")
    st.json(event.get("payload") or {}, expanded=True)


def show_transaction(detail: Mapping[str, Any]) -> None:
    """The summary row, the swimlane timeline, the event table and a step's payload."""
    events: list[Mapping[str, Any]] = list(detail.get("events") or [])
    _show_summary(detail)
    if not events:
        st.info(
            "This transaction has no events stored yet — the collector may still be "
            "ingesting them; refresh in a few seconds."
        )
        return
    _show_events(str(detail.get("correlation_id")), events)
