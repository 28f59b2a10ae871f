"""The FastAPI endpoint that receives Stripe webhooks.

Outcomes (every refusal raises an error that ``collector.install_problem_handlers``
answers as RFC 9457 problem details, ``application/problem+json``, with the code as
``error`` and the reason as ``detail``; the app serving the router must install those
handlers, as the collector's control API does):

=====================================  ======  ==========================
body larger than ``max_body``          413     ``body_too_large``
no ``Stripe-Signature`` header         401     ``missing_signature``
malformed, forged, stale, future       400     the ``RejectReason`` code
verified but not a JSON object         400     ``invalid_json``
JSON but not a Stripe event            400     ``invalid_payload``
an invoice event that does not fit     400     ``unprocessable``
its event out of the envelope's bounds 400     ``out_of_bounds`` (names the field)
``on_event`` raised ``ValidationError``  400     ``unprocessable``
``on_event`` raised ``BusError``       503     ``bus_unavailable``, Retry-After: 5
verified and handed to ``on_event``    200     ``{"received": true, "id": ...}``
=====================================  ======  ==========================

A ``traceparent``/``tracestate`` on the request (read strictly: a duplicated
``traceparent`` starts a new trace) is made the current trace context while
``on_event`` or ``on_rejected`` runs, so the events they publish continue the
sender's trace with its flags and tracestate.

The event is parsed into bounded models (``_events``) before ``on_event`` sees
it, so ``on_event`` is only ever handed the shape it expects. ``on_event`` is
awaited before the 200, so a 200 means the event is held. Each
refusal awaits ``on_rejected(code, detail)`` so it is recorded, not dropped; if
recording itself fails with ``BusError`` the answer is 503, and Stripe, which
retries non-2xx answers, tries again later.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from fastapi import APIRouter, Request
from opentelemetry import context as otel_context
from opentelemetry import trace

from tracing import (
    BusError,
    EnvelopeBoundsError,
    InterlockError,
    ValidationError,
    context_from_headers,
)

from ._events import WebhookPayloadError, parse_stripe_event
from ._signature import (
    SIGNATURE_HEADER,
    RejectReason,
    StripeSignatureError,
    verify_stripe_signature,
)

__all__ = ["stripe_webhook_router"]

log = logging.getLogger(__name__)

BUS_UNAVAILABLE = "bus_unavailable"


class _Refused(InterlockError):
    """A delivery this endpoint refuses: ``code`` (the answer's ``error``) says why and
    ``http_status`` is that refusal's status in the table above."""

    def __init__(self, status: int, code: RejectReason, detail: str) -> None:
        super().__init__(detail, system="billing")
        self.http_status = status
        self.code = code


class _BusUnavailable(BusError):
    """The bus took neither the event nor the record of its refusal: 503 with
    ``Retry-After`` (as every ``BusError``), so Stripe sends it again later."""

    code = BUS_UNAVAILABLE


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, max_body: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _TooLarge
    body = bytearray()
    # Content-Length may be absent (chunked) or wrong: count what actually arrives.
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise _TooLarge
    return bytes(body)


@contextmanager
def _caller_trace(request: Request) -> Iterator[None]:
    # FastAPI's own request span (newer FastAPI, with a tracer provider) may
    # already continue the caller's trace through the global propagator; then
    # the events become its children. Otherwise the caller's context is made
    # current here, so the trace never depends on the framework's telemetry.
    ctx = context_from_headers(request.headers)
    if ctx is None:
        yield
        return
    caller = trace.get_current_span(ctx).get_span_context()
    current = trace.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == caller.trace_id:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def _describe(event: dict[str, Any]) -> str:
    """The event's ID and type as far as they are readable, for the rejection record."""
    parts = [str(event.get(key))[:100] for key in ("type", "id") if event.get(key) is not None]
    return " ".join(parts) or "event"


def stripe_webhook_router(
    *,
    secrets: Sequence[str],
    on_event: Callable[[dict[str, Any]], Awaitable[None]],
    on_rejected: Callable[[str, str], Awaitable[None]],
    path: str = "/webhooks/stripe",
    max_body: int = 1_048_576,
) -> APIRouter:
    """A router with ``POST path`` that verifies, hands over and answers Stripe webhooks.

    Example::

        app.include_router(stripe_webhook_router(
            secrets=[current, previous], on_event=publish, on_rejected=record))
    """
    secret_list = [secret for secret in secrets if secret]
    if not secret_list:
        raise ValueError("stripe_webhook_router needs at least one webhook secret")
    if max_body < 1:
        raise ValueError("max_body must be positive")
    router = APIRouter()

    async def reject(request: Request, status: int, reason: RejectReason, detail: str) -> NoReturn:
        code = reason.value
        try:
            with _caller_trace(request):
                await on_rejected(code, detail)
        except BusError as exc:
            log.warning("could not record a rejected Stripe webhook (%s): %s", code, exc)
            raise _BusUnavailable(exc.message, system="billing") from exc
        log.info("rejected a Stripe webhook: %s (%s)", code, detail)
        raise _Refused(status, reason, detail)

    @router.post(path, name="stripe_webhook", response_model=None)
    async def receive(request: Request) -> dict[str, Any]:
        try:
            payload = await _read_capped(request, max_body)
        except _TooLarge:
            await reject(
                request, 413, RejectReason.BODY_TOO_LARGE, f"body exceeds the {max_body}-byte limit"
            )
        try:
            event = verify_stripe_signature(
                payload, request.headers.get(SIGNATURE_HEADER), secret_list
            )
        except StripeSignatureError as exc:
            status = 401 if exc.code is RejectReason.MISSING_SIGNATURE else 400
            await reject(request, status, exc.code, exc.message)
        except ValidationError as exc:
            await reject(request, 400, RejectReason.INVALID_JSON, exc.message)
        try:
            parse_stripe_event(event)
        except WebhookPayloadError as exc:
            await reject(request, 400, exc.code, f"{_describe(event)}: {exc.message}")
        try:
            with _caller_trace(request):
                await on_event(event)
        except EnvelopeBoundsError as exc:
            # Verified, but no event can carry it (an amount beyond decimal(18,2), a
            # year-9999 date): a resend cannot succeed, so it is refused, not retried.
            await reject(request, 400, RejectReason.OUT_OF_BOUNDS, exc.message)
        except ValidationError as exc:
            # The handler found what the models could not (a value its mapping refuses).
            await reject(
                request, 400, RejectReason.UNPROCESSABLE, f"{_describe(event)}: {exc.message}"
            )
        except BusError as exc:
            log.warning("could not hand over Stripe event %s: %s", event.get("id"), exc)
            raise _BusUnavailable(exc.message, system="billing") from exc
        return {"received": True, "id": event.get("id")}

    return router
