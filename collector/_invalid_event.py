"""The dead-letter event for a raw message that does not decode or validate.

Light on purpose (no DuckDB, no Arrow): the bus turns a bad message into an
``event.invalid`` event before anything is stored. Its event ID derives from the
bytes, so a redelivered bad message is stored once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pydantic

from tracing import ErrorInfo, Event, Reason, Status, System, mask_payload

__all__ = ["INVALID_KIND", "invalid_event", "masked_raw", "safe_text"]

#: The kind of the event a bad raw message becomes.
INVALID_KIND = "event.invalid"
_RAW_LIMIT = 2048
_ERROR_LIMIT = 1000
_NAMESPACE = uuid.UUID("0b7f3f3e-5d7c-4a57-8f0e-8a9c6f1d2b44")


def masked_raw(data: bytes, limit: int = _RAW_LIMIT) -> Any:
    """The raw message as it may be stored: parsed and masked when it is JSON,
    otherwise text with e-mail addresses masked; truncated either way."""
    text = data.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        masked = json.dumps(mask_payload(parsed), default=str)
    else:
        masked = str(mask_payload({"raw": text})["raw"])
    if len(masked) > limit:
        return masked[:limit] + f"... [{len(masked) - limit} more characters]"
    return masked


def invalid_event(data: bytes, error: Exception) -> tuple[Event, str]:
    """The ``event.invalid`` dead-letter event for a bad raw message, and a metric reason.

    Its event ID is derived from the bytes, so a redelivered bad message is stored
    once, like any other duplicate.
    """
    digest = hashlib.sha256(data).hexdigest()
    metric_reason = "schema"
    correlation_id: str | None = None
    if isinstance(error, pydantic.ValidationError):
        errors = error.errors(include_url=False)
        if any(e.get("type") == "json_invalid" for e in errors):
            metric_reason = "json"
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or '<root>'}: {e.get('msg')}"
            for e in errors
        )
    else:
        metric_reason = "decode"
        summary = str(error) or type(error).__name__
    # Keep the message's own correlation ID when it has a usable one, so the bad
    # message shows up in its transaction.
    try:
        parsed = json.loads(data)
        if isinstance(parsed, dict) and isinstance(parsed.get("correlation_id"), str):
            correlation_id = safe_text(parsed["correlation_id"])
    except ValueError:
        pass
    event = Event(
        event_id=str(uuid.uuid5(_NAMESPACE, digest)),
        correlation_id=correlation_id or f"invalid-{digest[:32]}",
        idempotency_key=f"invalid:{digest}",
        source=System.INTERLOCK,
        kind=INVALID_KIND,
        step="collector.validate",
        entity_type="raw_message",
        entity_id=digest[:16],
        status=Status.DEAD_LETTERED,
        payload={"raw": masked_raw(data), "size": len(data), "errors": summary[:_ERROR_LIMIT]},
        error=ErrorInfo(
            reason=Reason.VALIDATION,
            message=summary[:_ERROR_LIMIT],
            retriable=False,
            error_type=type(error).__name__,
        ),
    )
    return event, metric_reason


def safe_text(value: object, limit: int = 200) -> str | None:
    """``value`` when it can be stored as an identifier (a short string, valid Unicode)."""
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value
