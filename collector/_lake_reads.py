"""Reads over the lineage lake, in the control API's shapes.

``transaction_events`` is one transaction's lineage by correlation ID: its events
in event-time order as ``GET /api/v1/transactions/{id}`` lists them (every
envelope field, ISO times, two-place amounts, ``since_cause_ms``), read from
every collector's rows in the lake. Over the lake it is a scan of the events
table (docs/lineage-lake.md gives what that costs and what remains to make it fast).
"""

from __future__ import annotations

from typing import Any

from tracing import ENVELOPE, EnvelopeLayout

from ._lake import EVENTS_TABLE, LakeStore
from ._lineage_rows import event_dict

__all__ = ["transaction_events"]


def transaction_events(
    store: LakeStore, correlation_id: str, layout: EnvelopeLayout = ENVELOPE
) -> list[dict[str, Any]]:
    """One transaction's events, oldest first (an empty list if the lake has none)."""
    names = [n for n in store.schema.names if n not in ("ingested_at", "customer_name")]
    cols = ", ".join(f'"{n}"' for n in names)
    rows = store.query(
        f"SELECT {cols} FROM lake.{EVENTS_TABLE} WHERE correlation_id = ? "
        "ORDER BY event_time, event_id",
        [correlation_id],
    )
    stored = [dict(zip(names, r, strict=True)) for r in rows]
    times = {e["event_id"]: e["event_time"] for e in stored}
    # A cause outside this transaction is rare; look those up one by one.
    for cause in {e["causation_id"] for e in stored} - set(times) - {None}:
        found = store.query(
            f"SELECT event_time FROM lake.{EVENTS_TABLE} WHERE event_id = ? LIMIT 1", [cause]
        )
        if found:
            times[cause] = found[0][0]
    events = []
    for e in stored:
        item = event_dict(e, layout)
        cause_time = times.get(e["causation_id"]) if e["causation_id"] else None
        item["since_cause_ms"] = (
            None if cause_time is None else (e["event_time"] - cause_time).total_seconds() * 1000.0
        )
        events.append(item)
    return events
