"""Signed webhooks of any shape: a named 4xx (recorded) or a 200, never a 5xx; ingest goes on.

The app here is the runtime's composition: the webhook router over
``BillingWebhookIngress`` over an ``EmbeddedBus``, with the production mapping
functions. ``data/localstripe_invoice_payment_succeeded.json`` is a real event
read back from localstripe 1.15 (``GET /v1/events``) after a subscription was paid.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.billing import (
    BillingWebhookIngress,
    RejectReason,
    event_invoice_metadata,
    invoice_from_event,
    parse_stripe_event,
    sign_stripe_payload,
    stripe_webhook_router,
)
from collector import EmbeddedBus
from collector.api import install_problem_handlers
from tracing import Event, Reason

SECRET = "whsec_shapes"
REAL = json.loads(
    (Path(__file__).parent / "data" / "localstripe_invoice_payment_succeeded.json").read_text()
)


@dataclass
class Hooks:
    """One loop, one bus, one app for the whole module (Hypothesis runs many examples)."""

    loop: asyncio.AbstractEventLoop
    bus: EmbeddedBus
    client: httpx.AsyncClient
    seen: list[Event] = field(default_factory=list)
    serial: Iterator[int] = field(default_factory=itertools.count)

    def post(self, body: bytes) -> httpx.Response:
        async def go() -> httpx.Response:
            response = await self.client.post(
                "/webhooks/stripe",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign_stripe_payload(body, SECRET),
                },
            )
            await self.bus.drain()
            return response

        return self.loop.run_until_complete(go())

    def rejected(self) -> list[Event]:
        return [e for e in self.seen if e.kind == "webhook.rejected"]

    def good_event_lands(self) -> None:
        """A fresh real invoice event posted now is answered 200 and published."""
        n = next(self.serial)
        event = copy.deepcopy(REAL)
        event["id"] = f"evt_good_{n}"
        event["data"]["object"]["id"] = f"in_good_{n}"
        response = self.post(json.dumps(event).encode())
        assert response.status_code == 200, response.text
        paid = [e for e in self.seen if e.kind == "invoice.paid" and e.entity_id == f"in_good_{n}"]
        assert len(paid) == 1 and paid[0].status == "ok"


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    loop = asyncio.new_event_loop()
    bus = EmbeddedBus(partitions=2)

    async def no_metadata(_: str) -> dict[str, str]:
        return {}  # billing answers, and the subscription carries nothing of ours

    ingress = BillingWebhookIngress(
        bus,
        invoice_from_event=invoice_from_event,
        subscription_metadata=no_metadata,
        event_metadata=event_invoice_metadata,
    )
    app = FastAPI()
    install_problem_handlers(app)  # refusals are errors; the handlers answer them
    app.include_router(
        stripe_webhook_router(
            secrets=[SECRET], on_event=ingress.on_event, on_rejected=ingress.on_rejected
        )
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://hooks.test",
    )
    state = Hooks(loop, bus, client)

    async def record(event: Event) -> None:
        state.seen.append(event)

    bus.subscribe("recorder", record)
    loop.run_until_complete(bus.start())
    try:
        yield state
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(bus.stop())
        loop.close()


def _real(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(REAL)
    event["id"] = "evt_odd"
    for path, value in changes.items():
        target = event
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return event


ODD = {
    "data-a-string": (_real(data="oops"), RejectReason.INVALID_PAYLOAD),
    "lines-a-list": (_real(data__object__lines=[{"metadata": {}}]), RejectReason.UNPROCESSABLE),
    "parent-a-string": (_real(data__object__parent="sub_1"), RejectReason.UNPROCESSABLE),
    "amount-due-1e999": ("AMOUNT_1E999", RejectReason.UNPROCESSABLE),
    "created-plus-1e13": (_real(created=10**13), RejectReason.INVALID_PAYLOAD),
    "created-minus-1e13": (_real(created=-(10**13)), RejectReason.INVALID_PAYLOAD),
    "amount-due-1e18": (_real(data__object__amount_due=10**18), RejectReason.UNPROCESSABLE),
    "nested-too-deep": ("DEEP", RejectReason.INVALID_JSON),
}


def _body(spec: Any) -> bytes:
    if spec == "AMOUNT_1E999":
        text = json.dumps(_real(data__object__amount_due=14970))
        return text.replace('"amount_due": 14970', '"amount_due": 1e999').encode()
    if spec == "DEEP":
        return b"[" * 100_000 + b"]" * 100_000
    return json.dumps(spec).encode()


@pytest.mark.parametrize(("spec", "code"), ODD.values(), ids=ODD.keys())
def test_odd_signed_webhooks_are_400_with_a_reason_and_recorded(
    hooks: Hooks, spec: Any, code: RejectReason
) -> None:
    before = len(hooks.rejected())
    response = hooks.post(_body(spec))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == code
    [record] = hooks.rejected()[before:]
    assert record.error is not None
    assert (record.error.error_type, record.error.reason) == (code.value, Reason.VALIDATION)
    hooks.good_event_lands()


def test_the_real_payload_parses_and_maps() -> None:
    assert parse_stripe_event(REAL).type == "invoice.payment_succeeded"
    invoice = invoice_from_event(REAL)
    assert invoice is not None and invoice.order_ref == "006000000000000AAA"


# -- property: random JSON and mutations of the real event ------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**13, -(10**13), 10**18, 10**30, -1, 0])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["invoice", "event", "invoice.paid", "eur", "", "x" * 600])
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


_REAL_PATHS = [p for p in _paths(REAL) if p]


@st.composite
def _mutated_real(draw: st.DrawFn) -> Any:
    event = copy.deepcopy(REAL)
    event["id"] = f"evt_mut_{draw(st.integers(0, 10**6))}"
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_REAL_PATHS))
        parent: Any = event
        try:
            for part in path[:-1]:
                parent = parent[part]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(_JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return event


_ENVELOPES = st.fixed_dictionaries(
    {
        "id": _JSON | st.just("evt_env"),
        "type": st.sampled_from(["invoice.paid", "invoice.payment_succeeded", "customer.created"])
        | _JSON,
        "created": st.integers(-(10**14), 10**14) | _JSON,
        "data": _JSON | st.fixed_dictionaries({"object": _JSON}),
    }
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=_JSON | _mutated_real() | _ENVELOPES)
def test_property_no_signed_body_gets_a_5xx_and_ingest_continues(hooks: Hooks, body: Any) -> None:
    before = len(hooks.rejected())
    response = hooks.post(json.dumps(body).encode())
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        [record] = hooks.rejected()[before:]
        assert record.error is not None and record.error.error_type == response.json()["error"]
    hooks.good_event_lands()
