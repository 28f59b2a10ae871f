"""The Overview page's pieces: KPI tiles and the transactions-by-state chart."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import altair as alt
import streamlit as st

from ._format import format_age, format_count, format_money, format_money_short

__all__ = [
    "STATE_COLOURS",
    "STATE_ORDER",
    "count_rows",
    "flow_caption",
    "show_kpis",
    "state_chart",
    "state_rows",
]

STATE_ORDER = ("in_progress", "completed", "failed", "dead_lettered", "stalled")
STATE_COLOURS = ("#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00")


def _total(stats: Mapping[str, Any], state: str) -> Decimal:
    """The value of ``state``; "in_progress" counts stalled transactions too (they are
    not completed either: they wait past their step's deadline)."""
    values = stats.get("value_by_state") or {}
    states = ("in_progress", "stalled") if state == "in_progress" else (state,)
    return sum((Decimal(str(values.get(s) or "0")) for s in states), Decimal(0))


def _value(stats: Mapping[str, Any], state: str, currency: str | None) -> str:
    return format_money_short(str(_total(stats, state)), currency)


def _exact(stats: Mapping[str, Any], state: str, currency: str | None) -> str:
    return f"Exactly {format_money(str(_total(stats, state)), currency)}."


def show_kpis(stats: Mapping[str, Any], *, currency: str | None) -> None:
    """Two rows of tiles: transactions by state, then value, dead letters and flow."""
    by_state = stats.get("transactions_by_state") or {}
    first = st.columns(6)
    first[0].metric("Transactions", format_count(stats.get("transactions_total", 0)))
    first[1].metric("In flight", format_count(by_state.get("in_progress", 0)))
    first[2].metric("Completed", format_count(by_state.get("completed", 0)))
    first[3].metric("Failed", format_count(by_state.get("failed", 0)))
    first[4].metric("Dead-lettered", format_count(by_state.get("dead_lettered", 0)))
    first[5].metric(
        "Stalled",
        format_count(by_state.get("stalled", 0)),
        help="Overdue at the step they wait for, with no open dead letter.",
    )

    second = st.columns(5)
    backlog = int(stats.get("bus_backlog") or 0)
    second[0].metric(
        "Value in flight",
        _value(stats, "in_progress", currency),
        help="Order value of transactions not yet completed (stalled ones included). "
        + _exact(stats, "in_progress", currency),
    )
    second[1].metric(
        "Value completed",
        _value(stats, "completed", currency),
        help=_exact(stats, "completed", currency),
    )
    second[2].metric(
        "Dead letters open",
        format_count(stats.get("dead_letters_open", 0)),
        help="Events waiting for a replay, a fix or a decision.",
    )
    second[3].metric(
        "Bus backlog",
        format_count(backlog, "event" if backlog == 1 else "events"),
        help="Events published but not yet stored in the lineage.",
    )
    second[4].metric("Last event", format_age(stats.get("last_event_at")))
    st.caption(flow_caption(stats))


def flow_caption(stats: Mapping[str, Any]) -> str:
    """What the lineage holds, and the duplicates Interlock refused to act on.

    A duplicate delivery (a webhook or poll that repeats an event already handled) is
    stored with status ``duplicate``, as ``/metrics`` counts it
    (``interlock_events_total{status="duplicate"}``); a copy of an already stored event
    that the bus delivered twice is dropped at ingest and only counted.

    >>> flow_caption({"events_total": 1, "events_by_status": {"duplicate": 10},
    ...               "duplicates_dropped": 1}).split(" · ")[1:]
    ['10 duplicate deliveries not acted on', '1 redelivered copy dropped at ingest']
    """
    total = int(stats.get("events_total") or 0)
    duplicates = int((stats.get("events_by_status") or {}).get("duplicate") or 0)
    copies = int(stats.get("duplicates_dropped") or 0)
    delivery = "duplicate delivery" if duplicates == 1 else "duplicate deliveries"
    copy = "redelivered copy" if copies == 1 else "redelivered copies"
    return (
        f"{format_count(total, 'event' if total == 1 else 'events')} recorded · "
        f"{format_count(duplicates, delivery)} not acted on · "
        f"{format_count(copies, copy)}"
        " dropped at ingest"
    )


def state_rows(stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Transactions per state in ``STATE_ORDER`` (missing states count 0)."""
    by_state = stats.get("transactions_by_state") or {}
    states = list(STATE_ORDER) + sorted(set(by_state) - set(STATE_ORDER))
    return [{"state": s, "transactions": int(by_state.get(s, 0))} for s in states]


def state_chart(stats: Mapping[str, Any]) -> alt.Chart:
    """A horizontal bar per transaction state, coloured like the timeline."""
    rows = state_rows(stats)
    chart: alt.Chart = (
        alt.Chart({"values": rows})
        .mark_bar()
        .encode(
            x=alt.X(
                "transactions:Q", title="transactions", axis=alt.Axis(format="d", tickMinStep=1)
            ),
            y=alt.Y("state:N", sort=[r["state"] for r in rows], title=None),
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=list(STATE_ORDER), range=list(STATE_COLOURS)),
                legend=None,
            ),
            tooltip=["state:N", "transactions:Q"],
        )
        .properties(height=160)
    )
    return chart


def count_rows(counts: Mapping[str, Any], label: str) -> list[dict[str, Any]]:
    """``{"crm": 3, ...}`` as ``[{label: "crm", "events": 3}, ...]``, largest first."""
    items = sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: -kv[1])
    return [{label: name, "events": n} for name, n in items]
