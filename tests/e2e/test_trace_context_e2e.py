"""A caller's W3C trace context, end to end: a signed billing webhook carrying
``traceparent``/``tracestate`` → the ``invoice.paid`` event and the flow step it
causes → the lineage → the step's outgoing HTTP call to billing.

The webhook route, the ingress, the embedded bus, the quote-to-cash flow, the
billing adapter (real httpx, instrumented by ``setup_tracing``) and the DuckDB
lineage are the product's own; the ERP is the flow tests' in-memory fake, and
billing's API is a small local server that answers in Stripe's shape and keeps
the headers of every request it gets, which is what this test reads.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters import RetryPolicy
from adapters.billing import (
    BillingAdapter,
    BillingWebhookIngress,
    invoice_from_event,
    stripe_webhook_router,
)
from adapters.billing import sign_stripe_payload as sign
from adapters.flows import QuoteToCash, StepRunner
from adapters.sandbox._asgi import ThreadedServer
from collector import EmbeddedBus
from collector.api import install_problem_handlers
from collector.lineage import LineageStore
from tests.flows._fakes import FakeCrm, FakeErp, FakeSupport, Sale
from tracing import Event, Status, correlation_id_for

SECRET = "whsec_trace_context"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
STATE = "congo=t61rcWkgMzE,t1@rojo=00f067aa0ba902b7"


class BillingApi:
    """Stripe-shaped ``GET /v1/invoices/{id}`` and ``/v1/subscriptions/{id}``."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/invoices/{invoice_id}", self.invoice),
                Route("/v1/subscriptions/{sub_id}", self.subscription),
            ]
        )

    def _keep(self, request: Request) -> None:
        headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers.setdefault(key, []).append(value)
        self.requests.append((request.url.path, headers))

    async def invoice(self, request: Request) -> JSONResponse:
        self._keep(request)
        return JSONResponse(_invoice(request.path_params["invoice_id"]))

    async def subscription(self, request: Request) -> JSONResponse:
        self._keep(request)
        meta = {"order_ref": "006T", "customer_id": "001A"}
        return JSONResponse({"id": request.path_params["sub_id"], "metadata": meta})


def _invoice(invoice_id: str) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": "cus_1",
        "subscription": "sub_1",
        "currency": "usd",
        "amount_due": 39800,
        "amount_paid": 39800,
        "status": "paid",
        "number": "INV-1",
        "metadata": {
            "order_ref": "006T",
            "customer_id": "001A",
            "interlock_event_id": "00000000-0000-7000-8000-000000000001",
        },
    }


@pytest.fixture(scope="module")
def billing_api() -> Iterator[BillingApi]:
    api = BillingApi()
    with ThreadedServer(api.app) as server:
        api.url = server.url
        yield api


async def _no_sleep(_: float) -> None:
    return None


#: Newer FastAPI traces requests itself (through the global propagator); the
#: webhook must continue the caller's trace with that off as well.
_FRAMEWORK_TRACING = "telemetry" in inspect.signature(FastAPI).parameters


@pytest.mark.parametrize(
    "framework_tracing", [True, False], ids=["fastapi-spans", "no-fastapi-spans"]
)
@pytest.mark.parametrize("flags", ["00", "01"])
async def test_a_webhooks_trace_context_reaches_the_lineage_and_the_next_call(
    tmp_path, billing_api: BillingApi, flags: str, framework_tracing: bool
) -> None:
    if not framework_tracing and not _FRAMEWORK_TRACING:
        pytest.skip("this FastAPI has no request spans of its own to switch off")
    bus = EmbeddedBus(partitions=2)
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    bus.subscribe("recorder", record)
    erp = FakeErp()
    erp.sales["006T"] = Sale(1, "SO0001", "006T", "confirmed", 7, 0)
    async with BillingAdapter(billing_api.url, "sk_test_trace") as billing:
        flow = QuoteToCash(
            bus,
            StepRunner(bus, RetryPolicy(max_attempts=2), sleep=_no_sleep),
            crm=FakeCrm(),
            erp=erp,
            billing=billing,
            support=FakeSupport(),
        )
        flow.attach()
        ingress = BillingWebhookIngress(
            bus,
            invoice_from_event=invoice_from_event,
            subscription_metadata=billing.get_subscription_metadata,
        )
        app = FastAPI(telemetry={"tracing": False}) if not framework_tracing else FastAPI()
        install_problem_handlers(app)
        app.include_router(
            stripe_webhook_router(
                secrets=[SECRET], on_event=ingress.on_event, on_rejected=ingress.on_rejected
            )
        )
        await bus.start()
        invoice_id = f"in_trace_{flags}"
        body = json.dumps(
            {
                "id": f"evt_trace_{flags}",
                "type": "invoice.paid",
                "created": int(time.time()),
                "data": {"object": _invoice(invoice_id)},
            }
        ).encode()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://interlock") as client:
            r = await client.post(
                "/webhooks/stripe",
                content=body,
                headers={
                    "Stripe-Signature": sign(body, SECRET),
                    "traceparent": f"00-{TRACE}-{CALLER}-{flags}",
                    "tracestate": STATE,
                },
            )
        assert r.status_code == 200, r.text
        await bus.drain()  # the flow's step and its events, all handled
        await bus.stop()

    # The lineage: both events in the caller's trace, with its flags and tracestate.
    store = LineageStore(tmp_path / "lineage.duckdb")
    store.open()
    store.write_batch(seen)
    tx = store.get_transaction(correlation_id_for("crm", "opportunity", "006T"))
    store.close()
    assert tx is not None
    events = {e["kind"]: e for e in tx["events"] if e["status"] == Status.OK.value}
    assert set(events) == {"invoice.paid", "invoice.posted"}
    for event in events.values():
        assert event["trace_id"] == TRACE and event["span_id"] != CALLER
        assert event["trace_flags"] == int(flags, 16)
        assert event["tracestate"] == STATE

    # The call the step made to billing carried the same trace, flags and state.
    calls = [h for path, h in billing_api.requests if path == f"/v1/invoices/{invoice_id}"]
    assert calls, "the step never called billing"
    for headers in calls:
        (traceparent,) = headers["traceparent"]
        version, trace_id, parent_id, sent_flags = traceparent.split("-")
        assert (version, trace_id, sent_flags) == ("00", TRACE, flags)
        assert parent_id not in (CALLER, events["invoice.paid"]["span_id"])
        assert headers["tracestate"] == [STATE]
