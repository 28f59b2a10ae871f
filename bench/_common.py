"""Shared pieces of the benchmarks: realistic envelopes and resource figures."""

from __future__ import annotations

import os
import resource
from decimal import Decimal

from tracing import Event, System, new_event_id

__all__ = ["load_note", "make_events", "peak_rss_mb", "summary_line"]


def make_events(n: int, *, correlations: int = 10_000, payload_bytes: int = 1024) -> list[Event]:
    """``n`` order events with ~``payload_bytes`` of canonical payload each.

    Event IDs are UUIDv7 from ``new_event_id``, as every producer in Interlock makes
    them (time-ordered, so they arrive in roughly increasing order).
    """
    line = {"sku": "SKU-00000", "quantity": 3, "unit_price": "49.90", "description": "x" * 40}
    lines_needed = max(1, payload_bytes // 110)
    payload = {
        "order": {"lines": [dict(line, sku=f"SKU-{k:05d}") for k in range(lines_needed)]},
        "customer": {"id": "cust-1", "name": "Acme Industrial GmbH", "tier": "gold"},
    }
    out = []
    for i in range(n):
        out.append(
            Event(
                event_id=new_event_id(),
                correlation_id=f"txn-{i % correlations:06d}",
                idempotency_key=f"idem-{i}",
                source=System.CRM,
                target=System.ERP,
                kind="order.created",
                step="erp.create_order",
                entity_type="sales_order",
                entity_id=f"SO-{i}",
                amount=Decimal("1499.00"),
                currency="EUR",
                customer_id=f"cust-{i % 5000}",
                payload=payload,
            )
        )
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def summary_line(**figures: float | int | str) -> str:
    """The one ``name=value`` line every bench ends with."""
    parts = []
    for key, value in figures.items():
        parts.append(f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)
