"""The Adapters page's tables, from ``_data.adapters()`` (pure, unit-tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from ._format import MISSING, format_duration_ms, parse_time

__all__ = [
    "CIRCUIT_ICONS",
    "NO_CALLS",
    "adapter_table",
    "error_class_rows",
    "latency_rows",
    "quiet_text",
    "split_by_calls",
    "window_text",
]

#: How the derived circuit reads in the table (plain words: cells cannot hold icons).
CIRCUIT_ICONS = {"closed": "closed", "degraded": "DEGRADED", "open-like": "OPEN-LIKE"}


#: What a rate or latency cell says for a system Interlock made no call to in the window.
NO_CALLS = "no calls out"


def window_text(figures: Mapping[str, Any]) -> str:
    """``"14:05 to 15:05 UTC (1 h)"`` for the answer's window, readable instead of ISO.

    >>> window_text({"window_start": "2026-12-02T14:05:00+00:00",
    ...              "window_end": "2026-12-02T15:05:09.5+00:00", "window_minutes": 60})
    '2026-12-02 14:05:00 to 15:05:09 UTC (1 h 0 min)'
    """
    start, end = parse_time(figures.get("window_start")), parse_time(figures.get("window_end"))
    if start is None or end is None:
        return MISSING
    same_day = start.date() == end.date()
    first = start.strftime("%Y-%m-%d %H:%M:%S")
    last = end.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
    span = format_duration_ms(float(figures.get("window_minutes") or 0) * 60_000)
    return f"{first} to {last} UTC ({span})"


def _naive(value: str | None) -> Any:
    when = parse_time(value)
    return when.replace(tzinfo=None) if when else None


def adapter_table(
    systems: Sequence[Mapping[str, Any]], checks: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per system (numbers stay numbers so columns sort) and its column settings."""
    rows = []
    for s in systems:
        latency = s.get("latency_ms") or {}
        rate = s.get("error_rate")
        rows.append(
            {
                "system": s["system"],
                "health check": checks.get(s["system"], "—"),
                "circuit (derived)": CIRCUIT_ICONS.get(s.get("circuit", ""), s.get("circuit")),
                "failures in a row": s.get("consecutive_failures"),
                "calls/min": s.get("calls_per_minute"),
                "calls": s.get("calls"),
                "inbound": s.get("inbound"),
                "error rate %": None if rate is None else rate * 100,
                "p50 ms": latency.get("p50"),
                "p95 ms": latency.get("p95"),
                "p99 ms": latency.get("p99"),
                "429s": s.get("rate_limited"),
                "wait after 429": format_duration_ms(s.get("wait_after_429_ms")),
                "retrying now": s.get("retrying_now"),
                "open dead letters": s.get("dead_letters_open"),
                "last success": _naive(s.get("last_success_at")),
            }
        )
    config: dict[str, Any] = {
        "calls/min": st.column_config.NumberColumn(format="%.2f /min"),
        "error rate %": st.column_config.NumberColumn(format="%.1f %%"),
        "p50 ms": st.column_config.NumberColumn(format="%.0f ms"),
        "p95 ms": st.column_config.NumberColumn(format="%.0f ms"),
        "p99 ms": st.column_config.NumberColumn(format="%.0f ms"),
        "last success": st.column_config.DatetimeColumn(
            "last success (UTC)", format="YYYY-MM-DD HH:mm:ss"
        ),
    }
    return rows, config


def split_by_calls(
    systems: Sequence[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Systems Interlock called in the window, and those it only heard from.

    A system with no call out (the CRM: its changes arrive by polling and webhooks) has
    no error rate or latency to show; it goes to a line of its own instead of a row of
    empty cells, so the table's numbers stay numbers.
    """
    called = [s for s in systems if s.get("calls")]
    return called, [s for s in systems if not s.get("calls")]


def quiet_text(system: Mapping[str, Any]) -> str:
    """``"crm: no calls out; 12 events in; last success 14:03:10 UTC"``."""
    last = parse_time(system.get("last_success_at"))
    inbound = int(system.get("inbound") or 0)
    return (
        f"{system['system']}: {NO_CALLS}; {inbound:,} {'event' if inbound == 1 else 'events'} in"
        + (f"; last successful call {last:%Y-%m-%d %H:%M:%S} UTC" if last else "")
    )


def error_class_rows(systems: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``{system, reason, errors}`` for every error class seen, for a stacked bar chart."""
    return [
        {"system": s["system"], "reason": reason, "errors": n}
        for s in systems
        for reason, n in (s.get("errors_by_reason") or {}).items()
    ]


def latency_rows(systems: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``{system, percentile, ms}`` for systems with timed calls."""
    return [
        {"system": s["system"], "percentile": p, "ms": (s.get("latency_ms") or {}).get(p)}
        for s in systems
        for p in ("p50", "p95", "p99")
        if (s.get("latency_ms") or {}).get(p) is not None
    ]
