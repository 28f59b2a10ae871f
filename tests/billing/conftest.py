"""Billing fixtures: one real localstripe per session and a webhook receiver under uvicorn."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from adapters._canonical import Customer, OrderLine, SalesOrder
from adapters.billing import BillingAdapter, stripe_webhook_router
from adapters.sandbox.localstripe import LocalStripeServer
from collector.api import install_problem_handlers
from collector.process import free_port

WEBHOOK_SECRET = "whsec_live_" + uuid.uuid4().hex
OLD_WEBHOOK_SECRET = "whsec_old_" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripeServer]:
    with LocalStripeServer() as server:
        yield server


@pytest.fixture
async def billing(localstripe: LocalStripeServer) -> AsyncIterator[BillingAdapter]:
    # localstripe is test mode: the test card makes invoices paid (the demo's setting).
    async with BillingAdapter(
        localstripe.url, localstripe.api_key, attach_test_card=True
    ) as adapter:
        yield adapter


def _new_customer(name: str = "Acme GmbH") -> Customer:
    return Customer(customer_id="001" + uuid.uuid4().hex[:15], name=name, email="ap@acme.test")


def _new_order(
    customer: Customer, *, lines: list[OrderLine] | None = None, currency: str = "EUR"
) -> SalesOrder:
    return SalesOrder(
        order_ref="006" + uuid.uuid4().hex[:15],
        customer=customer,
        currency=currency,
        lines=lines
        or [OrderLine(sku="PLAT-SEAT", quantity=Decimal(3), unit_price=Decimal("49.90"))],
    )


@pytest.fixture
def new_customer() -> Any:
    """A factory of canonical customers with fresh IDs (the localstripe state is shared)."""
    return _new_customer


@pytest.fixture
def new_order() -> Any:
    """A factory of one-line monthly orders (3 x 49.90 EUR) with fresh order refs."""
    return _new_order


@dataclass
class Receiver:
    """What the webhook receiver under uvicorn has seen (written from its thread)."""

    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def wait_for(self, predicate: Any, within: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                for event in self.events:
                    if predicate(event):
                        return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching webhook within {within}s; saw {len(self.events)}")


@pytest.fixture(scope="session")
def receiver(localstripe: LocalStripeServer) -> Iterator[Receiver]:
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/webhooks/stripe")

    async def on_event(event: dict[str, Any]) -> None:
        with state.lock:
            state.events.append(event)

    async def on_rejected(code: str, detail: str) -> None:
        with state.lock:
            state.rejected.append((code, detail))

    app = FastAPI()
    install_problem_handlers(app)  # refusals are errors; the handlers answer them
    # Two secrets: the receiver is mid-rotation, localstripe signs with the new one.
    app.include_router(
        stripe_webhook_router(
            secrets=[OLD_WEBHOOK_SECRET, WEBHOOK_SECRET], on_event=on_event, on_rejected=on_rejected
        )
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="webhook-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("webhook receiver did not start")
        time.sleep(0.02)
    localstripe.configure_webhook(
        state.url, WEBHOOK_SECRET, events=["invoice.created", "invoice.payment_succeeded"]
    )
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(10)
