"""Deterministic lineage events for the lake tests."""

from __future__ import annotations

import uuid
from decimal import Decimal

from tracing import Event, System


def make_event(i: int, *, correlations: int = 50) -> Event:
    """Order event number ``i``; its ID is derived from ``i`` so runs can be compared."""
    return Event(
        event_id=str(uuid.UUID(int=i + 1)),
        correlation_id=f"corr-{i % correlations}",
        idempotency_key=f"idem-{i}",
        source=System.CRM,
        target=System.ERP,
        kind="order.created",
        step="erp.create_order",
        entity_type="sales_order",
        entity_id=f"SO-{i}",
        amount=Decimal("120.50"),
        currency="EUR",
        customer_id=f"cust-{i % 97}",
        payload={"note": "x" * 200, "lines": [{"sku": "A-1", "qty": 2}]},
    )
