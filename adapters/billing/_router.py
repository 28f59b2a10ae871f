"""The FastAPI endpoint that receives Stripe webhooks.

Outcomes (the JSON body is ``{"error": code, "detail": ...}`` for every refusal):

=====================================  ======  ==========================
body larger than ``max_body``          413     ``body_too_large``
no ``Stripe-Signature`` header         401     ``missing_signature``
malformed, forged, stale, future       400     the ``RejectReason`` code
verified but not a JSON object         400     ``invalid_json``
its event out of the envelope's bounds 400     ``out_of_bounds`` (names the field)
``on_event`` raised ``BusError``       503     ``bus_unavailable``, Retry-After: 5
verified and handed to ``on_event``    200     ``{"received": true, "id": ...}``
=====================================  ======  ==========================

``on_event`` is awaited before the 200, so a 200 means the event is held. Each
refusal awaits ``on_rejected(code, detail)`` so it is recorded, not dropped; if
recording itself fails with ``BusError`` the answer is 503, and Stripe, which
retries non-2xx answers, tries again later.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tracing import BusError, EnvelopeBoundsError, ValidationError

from ._signature import (
    SIGNATURE_HEADER,
    RejectReason,
    StripeSignatureError,
    verify_stripe_signature,
)

__all__ = ["stripe_webhook_router"]

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"
BUS_UNAVAILABLE = "bus_unavailable"


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


def _refusal(status: int, code: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


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

    async def reject(status: int, reason: RejectReason, detail: str) -> JSONResponse:
        code = reason.value
        try:
            await on_rejected(code, detail)
        except BusError as exc:
            log.warning("could not record a rejected Stripe webhook (%s): %s", code, exc)
            return _refusal(503, BUS_UNAVAILABLE, str(exc), **{"Retry-After": RETRY_AFTER_SECONDS})
        log.info("rejected a Stripe webhook: %s (%s)", code, detail)
        return _refusal(status, code, detail)

    @router.post(path, name="stripe_webhook", response_model=None)
    async def receive(request: Request) -> JSONResponse:
        try:
            payload = await _read_capped(request, max_body)
        except _TooLarge:
            return await reject(
                413, RejectReason.BODY_TOO_LARGE, f"body exceeds the {max_body}-byte limit"
            )
        try:
            event = verify_stripe_signature(
                payload, request.headers.get(SIGNATURE_HEADER), secret_list
            )
        except StripeSignatureError as exc:
            status = 401 if exc.code is RejectReason.MISSING_SIGNATURE else 400
            return await reject(status, exc.code, exc.message)
        except ValidationError as exc:
            return await reject(400, RejectReason.INVALID_JSON, exc.message)
        try:
            await on_event(event)
        except EnvelopeBoundsError as exc:
            # Verified, but no event can carry it (an amount beyond decimal(18,2), a
            # year-9999 date): a resend cannot succeed, so it is refused, not retried.
            return await reject(400, RejectReason.OUT_OF_BOUNDS, exc.message)
        except BusError as exc:
            log.warning("could not hand over Stripe event %s: %s", event.get("id"), exc)
            return _refusal(503, BUS_UNAVAILABLE, str(exc), **{"Retry-After": RETRY_AFTER_SECONDS})
        return JSONResponse({"received": True, "id": event.get("id")})

    return router
