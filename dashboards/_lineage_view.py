"""More of one transaction: milestone latencies, the causation graph, retries, dead
letters and replays, and links from trace IDs to a tracing backend (pure where possible)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ._format import format_duration_ms, parse_time
from ._timeline import STATUS_COLOURS, lane_of

__all__ = [
    "MILESTONES",
    "causation_dot",
    "customer_of",
    "milestone_rows",
    "recovery_rows",
    "trace_url",
]

#: The business milestones of quote-to-cash, in order: kind -> what it means.
MILESTONES: tuple[tuple[str, str], ...] = (
    ("opportunity.closed_won", "closed-won in CRM"),
    ("order.created", "order in ERP"),
    ("subscription.created", "subscription in billing"),
    ("invoice.posted", "invoice posted in ERP"),
    ("invoice.paid", "invoice paid"),
    ("case.enriched", "support case enriched"),
)


def _name_in(payload: Any) -> str | None:
    """``payload["customer"]["name"]`` or ``payload["customer_name"]``, if a non-blank text."""
    if not isinstance(payload, Mapping):
        return None
    customer = payload.get("customer")
    name = customer.get("name") if isinstance(customer, Mapping) else None
    if not (isinstance(name, str) and name.strip()):
        name = payload.get("customer_name")
    return name.strip() if isinstance(name, str) and name.strip() else None


def customer_of(detail: Mapping[str, Any]) -> str:
    """The customer's company name where the lineage holds one, else its account ID.

    The name comes from the transaction's ``customer_name``, else from the payload of
    its events (``order.created`` carries the canonical customer first); nothing is
    made up: without a name the CRM account ID is shown.
    """
    name = detail.get("customer_name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    events: Sequence[Mapping[str, Any]] = detail.get("events") or []
    ordered = sorted(events, key=lambda e: e.get("kind") != "order.created")  # stable
    for event in ordered:
        found = _name_in(event.get("payload"))
        if found:
            return found
    return str(detail.get("customer_id") or "unknown customer")


def milestone_rows(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The first successful event of each milestone reached, in time order, with the
    latency since the previous milestone and since closed-won."""
    firsts: dict[str, Any] = {}
    for event in events:
        kind = str(event.get("kind"))
        if event.get("status") in ("ok", "replayed") and kind not in firsts:
            when = parse_time(event.get("event_time"))
            if when is not None:
                firsts[kind] = when
    meaning = dict(MILESTONES)
    reached = sorted((t, k) for k, t in firsts.items() if k in meaning)
    rows: list[dict[str, Any]] = []
    start = reached[0][0] if reached else None
    previous = None
    for when, kind in reached:
        rows.append(
            {
                "milestone": meaning[kind],
                "kind": kind,
                "at (UTC)": when.strftime("%Y-%m-%d %H:%M:%S"),
                "since previous": format_duration_ms(
                    (when - previous).total_seconds() * 1000 if previous else None
                ),
                "since start": format_duration_ms(
                    (when - start).total_seconds() * 1000 if start else None
                ),
            }
        )
        previous = when
    return rows


def _dot_text(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def causation_dot(events: Sequence[Mapping[str, Any]]) -> str:
    """A Graphviz digraph: one node per event (coloured by status), an edge from each
    cause to its effect labelled with the latency; causes outside the transaction show
    as a dashed node."""
    ids = {str(e.get("event_id")) for e in events}
    lines = [
        "digraph causation {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
        'fontcolor="white"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#9e9e9e", fontcolor="#757575"];',
    ]
    outside: set[str] = set()
    for event in events:
        status = str(event.get("status") or "ok")
        colour = STATUS_COLOURS.get(status, "#616161")
        # Each part is escaped on its own; ``\\n`` between them is DOT's line break.
        parts = (lane_of(event), event.get("kind"), f"{status} #{event.get('attempt') or 1}")
        label = "\\n".join(_dot_text(part) for part in parts)
        lines.append(
            f'  "{_dot_text(event.get("event_id"))}" [label="{label}", fillcolor="{colour}"];'
        )
    for event in events:
        cause = event.get("causation_id")
        if not cause:
            continue
        if cause not in ids and cause not in outside:
            outside.add(str(cause))
            lines.append(
                f'  "{_dot_text(cause)}" [label="cause outside\\nthis transaction", '
                'style="dashed", fontcolor="#757575"];'
            )
        latency = format_duration_ms(event.get("since_cause_ms"))
        lines.append(
            f'  "{_dot_text(cause)}" -> "{_dot_text(event.get("event_id"))}" '
            f'[label="{_dot_text(latency)}"];'
        )
    lines.append("}")
    return "\n".join(lines)


def recovery_rows(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every retry, failure, dead letter and replay of the transaction, in time order."""
    rows: list[dict[str, Any]] = []
    for event in events:
        status = event.get("status")
        if status == "ok" and not event.get("replay_id"):
            continue
        error = event.get("error") or {}
        rows.append(
            {
                "time (UTC)": _utc_text(event.get("event_time")),
                "step": event.get("step"),
                "status": status,
                "attempt": event.get("attempt"),
                "reason": error.get("reason") if isinstance(error, Mapping) else None,
                "replay": event.get("replay_id") or "",
                "replay of": event.get("replay_of") or "",
                "event ID": event.get("event_id"),
            }
        )
    return rows


def _utc_text(value: str | None) -> str | None:
    when = parse_time(value)
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else None


def trace_url(trace_id: str | None) -> str | None:
    """The trace in a tracing backend, from ``INTERLOCK_TRACE_URL`` (a template with
    ``{trace_id}``, e.g. ``http://127.0.0.1:16686/trace/{trace_id}``); ``None`` unset."""
    template = os.environ.get("INTERLOCK_TRACE_URL", "").strip()
    if not template or not trace_id or "{trace_id}" not in template:
        return None
    return template.replace("{trace_id}", quote(trace_id, safe=""))
