"""Tables the pages show, built as pandas frames from API items (pure, unit-tested)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st

from ._format import format_duration_ms, parse_time, to_decimal
from ._lineage_view import customer_of
from ._views import transaction_link

__all__ = [
    "TRANSACTION_COLUMNS",
    "event_table",
    "shared_currency",
    "transaction_table",
]

#: Column settings for ``transaction_table``: the first column links to the timeline.
TRANSACTION_COLUMNS: dict[str, Any] = {
    "transaction": st.column_config.LinkColumn(
        "transaction", display_text=r"cid=(.*)$", help="Open its timeline"
    ),
    "amount": st.column_config.NumberColumn("amount", format="%.2f"),
    "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "updated": st.column_config.DatetimeColumn("updated (UTC)", format="YYYY-MM-DD HH:mm:ss"),
}


def _naive_utc(value: Any) -> Any:
    parsed = parse_time(value)
    return parsed.replace(tzinfo=None) if parsed else None


def transaction_table(
    items: Iterable[Mapping[str, Any]], *, links: bool = True
) -> list[dict[str, Any]]:
    """Transaction summaries as table rows (numbers stay numbers so sorting works)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        cid = str(item.get("correlation_id", ""))
        amount = to_decimal(item.get("amount"))
        rows.append(
            {
                "transaction": transaction_link(cid) if links else cid,
                "order": item.get("order_ref"),
                "customer": customer_of(item),
                "amount": float(amount) if amount is not None else None,
                "currency": item.get("currency"),
                "state": item.get("state"),
                "last step": " / ".join(
                    str(item[key])
                    for key in ("last_system", "last_kind", "last_status")
                    if item.get(key)
                ),
                "events": item.get("event_count"),
                "failed": item.get("failed_count"),
                "dead letters": item.get("dead_letter_count"),
                "started": _naive_utc(item.get("started_at")),
                "updated": _naive_utc(item.get("updated_at")),
            }
        )
    return rows


def event_table(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A transaction's events in API order, one row each, for the table under the chart."""
    from ._timeline import lane_of  # local: keeps this module free of Altair at import

    rows: list[dict[str, Any]] = []
    for event in events:
        error = event.get("error") or {}
        rows.append(
            {
                "time": _naive_utc(event.get("event_time")),
                "system": lane_of(event),
                "kind": event.get("kind"),
                "step": event.get("step"),
                "status": event.get("status"),
                "attempt": event.get("attempt"),
                "since cause": format_duration_ms(event.get("since_cause_ms")),
                "duration": format_duration_ms(event.get("duration_ms")),
                "error": (
                    f"{error.get('reason')}: {error.get('message', '')}"
                    if isinstance(error, Mapping) and error
                    else ""
                ),
                "trace ID": event.get("trace_id"),
                "event ID": event.get("event_id"),
            }
        )
    return rows


def shared_currency(
    items: Iterable[Mapping[str, Any]], stats: Mapping[str, Any] | None = None
) -> str | None:
    """The one currency values are in: ``stats["currency"]`` if the API gives it, else the
    single currency of ``items``; ``None`` when mixed or unknown (then no code is shown)."""
    if stats and stats.get("currency"):
        return str(stats["currency"]).upper()
    seen = {str(item["currency"]).upper() for item in items if item.get("currency")}
    return seen.pop() if len(seen) == 1 else None
