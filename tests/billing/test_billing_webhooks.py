"""Stripe webhooks: live signed deliveries from localstripe, and every refusal outcome."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import stripe
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.billing import (
    BillingAdapter,
    RejectReason,
    StripeSignatureError,
    invoice_from_event,
    sign_stripe_payload,
    stripe_webhook_router,
    verify_stripe_signature,
)
from collector.api import install_problem_handlers
from tracing import BusError, MappingError, SignatureError, ValidationError

SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"
EVENT = {
    "id": "evt_1",
    "object": "event",
    "type": "customer.updated",
    "created": 1_780_000_000,
    "data": {"object": {"object": "customer", "id": "cus_1"}},
}
BODY = json.dumps(EVENT).encode()


def stripe_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The header the official Stripe library generates for tests."""
    return str(
        stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)
    )


# -- the live path: localstripe signs and delivers, uvicorn receives --------------------


@pytest.mark.slow
async def test_localstripe_delivers_signed_invoice_events(
    billing: BillingAdapter, receiver: Any, new_customer: Any, new_order: Any
) -> None:
    customer = new_customer()
    cus = await billing.ensure_customer(customer, idempotency_key=customer.customer_id)
    order = new_order(customer)
    sub, _ = await billing.create_subscription(
        order, cus, idempotency_key="s-" + order.order_ref, metadata={"correlation_id": "c-9"}
    )

    def paid_for_this_order(event: dict[str, Any]) -> bool:
        obj = event["data"]["object"]
        return bool(
            event["type"] == "invoice.payment_succeeded"
            and obj["subscription"] == sub.subscription_id
        )

    event = await receiver.wait_for(paid_for_this_order)
    invoice = invoice_from_event(event)
    assert invoice is not None
    assert invoice.status == "paid" and invoice.order_ref == order.order_ref
    assert invoice.customer_id == customer.customer_id
    assert invoice == await billing.get_invoice(invoice.invoice_id)
    assert receiver.rejected == []


# -- the router in-process (a real FastAPI app over ASGI) ---------------------------------


class Recorder:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.rejected: list[tuple[str, str]] = []
        self.fail_with = fail_with

    async def on_event(self, event: dict[str, Any]) -> None:
        if self.fail_with:
            raise self.fail_with
        self.events.append(event)

    async def on_rejected(self, code: str, detail: str) -> None:
        self.rejected.append((code, detail))


def _app(recorder: Recorder, **kwargs: Any) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)  # refusals are errors; the handlers answer them
    app.include_router(
        stripe_webhook_router(
            secrets=[OLD_SECRET, SECRET],
            on_event=recorder.on_event,
            on_rejected=recorder.on_rejected,
            **kwargs,
        )
    )
    return app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(recorder, max_body=4096))
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as c:
        yield c


async def _post(client: httpx.AsyncClient, body: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return await client.post("/webhooks/stripe", content=body, headers=headers)


async def test_verified_event_is_handed_over_then_200(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    response = await _post(client, BODY, stripe_header(BODY, SECRET))
    assert response.status_code == 200
    assert response.json() == {"received": True, "id": "evt_1"}
    assert recorder.events == [EVENT] and recorder.rejected == []


async def test_either_of_two_configured_secrets_is_accepted(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    assert (await _post(client, BODY, stripe_header(BODY, OLD_SECRET))).status_code == 200
    # Stripe rolling its secret: two v1 values, only the second one ours.
    ts = int(time.time())
    rolled = (
        sign_stripe_payload(BODY, "whsec_other", timestamp=ts)
        + ",v1="
        + (sign_stripe_payload(BODY, SECRET, timestamp=ts).split("v1=")[1])
    )
    assert (await _post(client, BODY, rolled)).status_code == 200
    assert len(recorder.events) == 2


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        (None, 401, RejectReason.MISSING_SIGNATURE),
        ("", 401, RejectReason.MISSING_SIGNATURE),
        ("garbage", 400, RejectReason.MALFORMED_SIGNATURE),
        ("t=abc,v1=00", 400, RejectReason.MALFORMED_SIGNATURE),
        (f"t={int(time.time())}", 400, RejectReason.MALFORMED_SIGNATURE),
        (f"t={int(time.time())},v1=" + "0" * 64, 400, RejectReason.SIGNATURE_MISMATCH),
        (stripe_header(BODY, "whsec_forged"), 400, RejectReason.SIGNATURE_MISMATCH),
        (stripe_header(BODY, SECRET, int(time.time()) - 301), 400, RejectReason.TIMESTAMP_TOO_OLD),
        (
            stripe_header(BODY, SECRET, int(time.time()) + 3600),
            400,
            RejectReason.TIMESTAMP_IN_FUTURE,
        ),
    ],
    ids=["absent", "empty", "garbage", "bad-t", "no-v1", "zeros", "forged", "stale", "future"],
)
async def test_refusals_are_answered_and_recorded(
    client: httpx.AsyncClient, recorder: Recorder, header: str | None, status: int, code: str
) -> None:
    response = await _post(client, BODY, header)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert recorder.events == []
    assert [c for c, _ in recorder.rejected] == [code]
    assert SECRET not in response.text and SECRET not in recorder.rejected[0][1]


async def test_not_json_is_400(client: httpx.AsyncClient, recorder: Recorder) -> None:
    for body in (b"not json", b"[1, 2]"):
        response = await _post(client, body, stripe_header(body, SECRET))
        assert response.status_code == 400
        assert response.json()["error"] == RejectReason.INVALID_JSON
    assert [c for c, _ in recorder.rejected] == [RejectReason.INVALID_JSON] * 2


async def test_oversized_body_is_413_declared_or_streamed(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    response = await _post(client, big, stripe_header(big, SECRET))
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * 1000

    response = await client.post(
        "/webhooks/stripe", content=chunks(), headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert response.status_code == 413
    assert [c for c, _ in recorder.rejected] == [RejectReason.BODY_TOO_LARGE] * 2
    assert recorder.events == []


async def test_bus_down_is_503_with_retry_after() -> None:
    recorder = Recorder(fail_with=BusError("bus is full"))
    transport = httpx.ASGITransport(app=_app(recorder))
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as client:
        response = await _post(client, BODY, stripe_header(BODY, SECRET))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"] == "bus_unavailable"


def test_router_needs_a_secret(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="secret"):
        stripe_webhook_router(
            secrets=[""], on_event=recorder.on_event, on_rejected=recorder.on_rejected
        )


# -- verify_stripe_signature directly ----------------------------------------------------


def test_verify_errors_are_signature_errors_with_distinct_messages() -> None:
    now = 1_800_000_000.0
    cases = {
        RejectReason.MISSING_SIGNATURE: None,
        RejectReason.MALFORMED_SIGNATURE: "v1",
        RejectReason.SIGNATURE_MISMATCH: sign_stripe_payload(BODY, "whsec_x", timestamp=int(now)),
        RejectReason.TIMESTAMP_TOO_OLD: sign_stripe_payload(BODY, SECRET, timestamp=int(now) - 301),
        RejectReason.TIMESTAMP_IN_FUTURE: sign_stripe_payload(
            BODY, SECRET, timestamp=int(now) + 301
        ),
    }
    messages = set()
    for code, header in cases.items():
        with pytest.raises(StripeSignatureError) as caught:
            verify_stripe_signature(BODY, header, [SECRET], now=now)
        assert caught.value.code == code and isinstance(caught.value, SignatureError)
        messages.add(caught.value.message)
    assert len(messages) == len(cases)
    edge = sign_stripe_payload(BODY, SECRET, timestamp=int(now) - 300)
    assert verify_stripe_signature(BODY, edge, [SECRET], now=now) == EVENT


def test_verify_rejects_a_non_json_body_as_validation_error() -> None:
    with pytest.raises(ValidationError):
        verify_stripe_signature(b"\xff", sign_stripe_payload(b"\xff", SECRET), [SECRET])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event=st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=4),
    data=st.data(),
)
def test_property_signed_bodies_verify_and_any_single_byte_change_fails(
    event: dict[str, str], data: st.DataObject
) -> None:
    body = json.dumps({"id": "evt_p", **event}, ensure_ascii=False).encode()
    header = stripe_header(body, SECRET)
    assert verify_stripe_signature(body, header, [OLD_SECRET, SECRET])["id"] == "evt_p"
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    new_byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
    tampered = body[:index] + bytes([new_byte]) + body[index + 1 :]
    with pytest.raises(StripeSignatureError) as caught:
        verify_stripe_signature(tampered, header, [OLD_SECRET, SECRET])
    assert caught.value.code == RejectReason.SIGNATURE_MISMATCH


# -- invoice_from_event ---------------------------------------------------------------------


def _invoice_event(kind: str, **invoice: Any) -> dict[str, Any]:
    obj = {
        "object": "invoice",
        "id": "in_1",
        "customer": "cus_1",
        "currency": "jpy",
        "amount_due": 1200,
        "amount_paid": 1200,
        "status": "paid",
        "subscription": "sub_1",
        "metadata": {},
        "lines": {"data": [{"metadata": {"order_ref": "006A", "customer_id": "001A"}}]},
        **invoice,
    }
    return {"id": "evt_1", "type": kind, "data": {"object": obj}}


def test_invoice_from_event_maps_invoice_events() -> None:
    invoice = invoice_from_event(_invoice_event("invoice.payment_succeeded"))
    assert invoice is not None
    assert (invoice.order_ref, invoice.customer_id, invoice.currency) == ("006A", "001A", "JPY")
    assert invoice.amount_due == 1200  # JPY has no minor unit


def test_invoice_from_event_ignores_other_types() -> None:
    assert invoice_from_event({"type": "customer.created", "data": {"object": {}}}) is None


def test_invoice_event_without_our_customer_is_a_mapping_error() -> None:
    event = _invoice_event("invoice.created", lines={"data": []})
    with pytest.raises(MappingError):
        invoice_from_event(event)
