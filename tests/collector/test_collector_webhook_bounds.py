"""The finding end to end over HTTP: a correctly signed billing ``invoice.paid``
with ``amount_due`` = 10^18 is refused with a named reason, every later event
still lands, and ``/healthz`` tells the truth about ingest."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from adapters.billing import (
    BillingWebhookIngress,
    invoice_from_event,
    sign_stripe_payload,
    stripe_webhook_router,
)
from collector import EmbeddedBus, Role, TokenStore
from collector.api import Metrics, create_app
from collector.lineage import AsyncLineage, BatchOutcome, Collector, LineageStore
from tracing import Event, correlation_id_for

SECRET = "whsec_bounds_test"
VIEWER = {"Authorization": "Bearer view-token"}


def _invoice_paid(n: int, amount_due: int) -> bytes:
    order_ref = f"006BOUNDS{n:06d}"
    return json.dumps(
        {
            "id": f"evt_bounds_{n}",
            "type": "invoice.paid",
            "created": int(time.time()),
            "data": {
                "object": {
                    "object": "invoice",
                    "id": f"in_bounds_{n}",
                    "currency": "eur",
                    "amount_due": amount_due,
                    "amount_paid": amount_due,
                    "status": "paid",
                    "metadata": {
                        "customer_id": "001BOUNDS",
                        "order_ref": order_ref,
                        "interlock_event_id": f"cause-{n}",
                    },
                }
            },
        }
    ).encode()


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign_stripe_payload(body, SECRET)},
    )


class _FlakyLineage(AsyncLineage):
    """A real lineage whose batch writes fail while ``broken`` is set."""

    def __init__(self) -> None:
        super().__init__(LineageStore())
        self.broken = False

    async def write_batch_detailed(self, events: Sequence[Event]) -> BatchOutcome:
        if self.broken:
            raise RuntimeError("disk on fire")
        return await super().write_batch_detailed(events)


@dataclass
class Stack:
    client: httpx.AsyncClient
    lineage: _FlakyLineage
    collector: Collector
    metrics: Metrics


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """The runtime's ingest composition: embedded bus, collector, billing ingress,
    the Stripe webhook route and the control API with the ``ingest`` health check."""
    metrics = Metrics(CollectorRegistry())
    lineage = _FlakyLineage()
    await lineage.open()
    bus = EmbeddedBus(partitions=2)
    collector = Collector(lineage, metrics, flush_interval=0.01, max_backoff=0.05)
    collector.attach(bus)

    async def no_lookup(subscription_id: str) -> dict[str, str]:
        raise AssertionError("the invoices carry their metadata")

    ingress = BillingWebhookIngress(
        bus, invoice_from_event=invoice_from_event, subscription_metadata=no_lookup
    )

    async def on_rejected(code: str, detail: str) -> None:
        metrics.webhook_rejected.labels(system="billing", reason=code).inc()
        await ingress.on_rejected(code, detail)

    async def health() -> dict[str, str]:
        return {"bus": "ok", "ingest": collector.health()}

    tokens = TokenStore()
    tokens.add("view", Role.VIEWER, "view-token")
    router = stripe_webhook_router(
        secrets=[SECRET], on_event=ingress.on_event, on_rejected=on_rejected
    )
    app = create_app(
        lineage=lineage, metrics=metrics, tokens=tokens, routers=[router], health=health
    )
    await bus.start()
    await collector.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Stack(client, lineage, collector, metrics)
    await bus.stop()
    await collector.stop()
    await lineage.close()


async def _transaction(stack: Stack, n: int, within: float = 5.0) -> dict[str, Any]:
    cid = correlation_id_for("crm", "opportunity", f"006BOUNDS{n:06d}")
    deadline = time.monotonic() + within
    while True:
        r = await stack.client.get(f"/api/v1/transactions/{cid}", headers=VIEWER)
        if r.status_code == 200:
            return dict(r.json())
        assert r.status_code == 404, r.text
        assert time.monotonic() < deadline, f"transaction {cid} never landed"
        await asyncio.sleep(0.02)


async def test_a_signed_invoice_of_10_to_the_18_is_refused_and_ingest_goes_on(
    stack: Stack,
) -> None:
    assert (await _post(stack.client, _invoice_paid(1, 12_345))).status_code == 200
    await _transaction(stack, 1)

    huge = await _post(stack.client, _invoice_paid(2, 10**18))
    assert huge.status_code == 400
    # The webhook's own bounded models refuse it first, naming the field; an amount
    # that fits them but not the envelope is refused as out_of_bounds (the envelope's
    # bounds: tests/collector/test_collector_invalid.py).
    assert huge.json()["error"] == "unprocessable"
    assert "amount_due" in huge.json()["detail"]

    for n in range(3, 6):
        assert (await _post(stack.client, _invoice_paid(n, 100 * n))).status_code == 200
    for n in range(3, 6):
        landed = await _transaction(stack, n)
        assert [e["amount"] for e in landed["events"]] == [f"{n}.00"]

    # The refusal is recorded (metric and a failed webhook.rejected event), not hidden.
    assert (
        stack.metrics.registry.get_sample_value(
            "interlock_webhook_rejected_total", {"system": "billing", "reason": "unprocessable"}
        )
        == 1.0
    )
    stats = (await stack.client.get("/api/v1/stats", headers=VIEWER)).json()
    deadline = time.monotonic() + 5
    while stats["events_by_status"].get("failed", 0) < 1:
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.02)
        stats = (await stack.client.get("/api/v1/stats", headers=VIEWER)).json()
    health = (await stack.client.get("/healthz", headers=VIEWER)).json()
    assert health == {"status": "ok", "checks": {"lineage": "ok", "bus": "ok", "ingest": "ok"}}


async def test_healthz_reports_failing_flushes_and_recovers(stack: Stack) -> None:
    stack.lineage.broken = True
    assert (await _post(stack.client, _invoice_paid(7, 700))).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        health = (await stack.client.get("/healthz", headers=VIEWER)).json()
        if health["status"] == "degraded":
            break
        assert time.monotonic() < deadline, health
        await asyncio.sleep(0.02)
    assert health["checks"]["ingest"].startswith("error: ")
    assert "RuntimeError: disk on fire" in health["checks"]["ingest"]
    metrics = (await stack.client.get("/metrics", headers=VIEWER)).text
    assert 'interlock_ingest_flush_errors_total{reason="RuntimeError"}' in metrics
    stack.lineage.broken = False
    landed = await _transaction(stack, 7)
    assert [e["amount"] for e in landed["events"]] == ["7.00"]
    health = (await stack.client.get("/healthz", headers=VIEWER)).json()
    assert health["status"] == "ok" and health["checks"]["ingest"] == "ok"
