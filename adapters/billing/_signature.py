"""Verify Stripe webhook signatures.

``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is
HMAC-SHA256 over ``b"<t>." + raw body`` keyed with the whole ``whsec_...`` secret.
Any ``v1`` may match any configured secret (Stripe sends one per active secret
while a secret is being rolled; we may hold old and new). Unlike Stripe's own
library we also reject timestamps too far in the future: a clock that far
ahead is as suspect as a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from tracing import SignatureError, ValidationError

__all__ = [
    "RejectReason",
    "StripeSignatureError",
    "sign_stripe_payload",
    "verify_stripe_signature",
]

SIGNATURE_HEADER = "Stripe-Signature"


class RejectReason(StrEnum):
    """Why a webhook delivery was refused; the ``error`` code of the answer."""

    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    INVALID_JSON = "invalid_json"
    #: Verified JSON that is not a Stripe event (see ``_events``).
    INVALID_PAYLOAD = "invalid_payload"
    #: A Stripe event we act on whose object does not fit its shape.
    UNPROCESSABLE = "unprocessable"
    BODY_TOO_LARGE = "body_too_large"
    #: Verified, but the event it becomes breaks the envelope's bounds (amount, time, size).
    OUT_OF_BOUNDS = "out_of_bounds"


class StripeSignatureError(SignatureError):
    """A ``SignatureError`` that says which check failed (``code``)."""

    def __init__(self, code: RejectReason, message: str) -> None:
        super().__init__(message, system="billing")
        self.code = code


def _expected(secret: str, timestamp: bytes, payload: bytes) -> str:
    return hmac.new(secret.encode(), timestamp + b"." + payload, hashlib.sha256).hexdigest()


def sign_stripe_payload(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` value for ``payload``, as Stripe computes it (for tests, demos)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_expected(secret, str(ts).encode(), payload)}"


def _parse(header: str) -> tuple[str, list[str]]:
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise StripeSignatureError(
                RejectReason.MALFORMED_SIGNATURE,
                f"malformed {SIGNATURE_HEADER} header: element without key=value",
            )
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise StripeSignatureError(
                    RejectReason.MALFORMED_SIGNATURE,
                    f"malformed {SIGNATURE_HEADER} header: t must be one unix timestamp",
                )
            timestamp = value
        elif key == "v1":
            signatures.append(value)
        # Other schemes (v0 is a test scheme) are ignored, as Stripe's clients do.
    if timestamp is None:
        raise StripeSignatureError(
            RejectReason.MALFORMED_SIGNATURE, f"malformed {SIGNATURE_HEADER} header: no timestamp"
        )
    if not signatures:
        raise StripeSignatureError(
            RejectReason.MALFORMED_SIGNATURE,
            f"malformed {SIGNATURE_HEADER} header: no v1 signature",
        )
    return timestamp, signatures


def verify_stripe_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a Stripe webhook and return the parsed event.

    Raises ``StripeSignatureError`` (a ``SignatureError``) with a distinct
    ``code`` for a missing header, a malformed header, no matching ``v1``, a
    timestamp older than ``tolerance`` seconds or more than ``tolerance`` seconds
    ahead; ``ValidationError`` when the verified body is not a JSON object.
    ``ValueError`` when no secret is configured (a programming error).
    """
    usable = [secret for secret in secrets if secret]
    if not usable:
        raise ValueError("at least one webhook secret is required")
    if header is None or not header.strip():
        raise StripeSignatureError(
            RejectReason.MISSING_SIGNATURE, f"missing {SIGNATURE_HEADER} header"
        )
    timestamp, signatures = _parse(header)
    expected = [_expected(secret, timestamp.encode(), payload) for secret in usable]
    # Every pair is compared (no early exit) so timing says nothing about which failed.
    matched = False
    for candidate in signatures:
        for wanted in expected:
            matched |= hmac.compare_digest(candidate.encode(), wanted.encode())
    if not matched:
        raise StripeSignatureError(
            RejectReason.SIGNATURE_MISMATCH,
            "no v1 signature matches any configured webhook secret",
        )
    age = (time.time() if now is None else now) - int(timestamp)
    if age > tolerance:
        raise StripeSignatureError(
            RejectReason.TIMESTAMP_TOO_OLD,
            f"signature timestamp is {age:.0f}s old, beyond the {tolerance}s tolerance",
        )
    if -age > tolerance:
        raise StripeSignatureError(
            RejectReason.TIMESTAMP_IN_FUTURE,
            f"signature timestamp is {-age:.0f}s in the future, beyond the {tolerance}s tolerance",
        )
    try:
        event = json.loads(payload)
    except RecursionError as exc:  # a body nested deeper than the parser's stack
        raise ValidationError("webhook body is nested too deeply", system="billing") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"webhook body is not JSON: {exc}", system="billing") from exc
    if not isinstance(event, dict):
        raise ValidationError("webhook body is not a JSON object", system="billing")
    return event
