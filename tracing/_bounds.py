"""The envelope's bounds: what a stored step may hold, checked where events enter.

The lineage keeps amounts as ``DECIMAL(18, 2)``, counters as 32-bit integers and
every envelope as one row; a value outside those ranges cannot be stored, and a
multi-megabyte payload or a year-9999 timestamp is a producer defect, not a
business event. ``envelope_bounds_error`` names the first bound an envelope
breaks (``None`` when it keeps them all); ``check_envelope_bounds`` raises
:class:`~tracing.EnvelopeBoundsError` with that reason.

>>> from decimal import Decimal
>>> e = Event(correlation_id="c", idempotency_key="k", source="billing",
...           kind="invoice.paid", step="s", entity_type="invoice", entity_id="in_1",
...           amount=Decimal(10) ** 18)
>>> envelope_bounds_error(e)
'amount: 1000000000000000000 does not fit decimal(18,2) (|amount| < 10^16)'
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pydantic_core

from ._envelope import Event
from ._errors import EnvelopeBoundsError
from ._layout import layout_of

__all__ = [
    "MAX_AMOUNT",
    "MAX_ATTEMPT",
    "MAX_ERROR_MESSAGE",
    "MAX_ID_LENGTH",
    "MAX_PAYLOAD_BYTES",
    "MAX_TIME",
    "MIN_TIME",
    "check_envelope_bounds",
    "envelope_bounds_error",
]

#: The largest amount ``DECIMAL(18, 2)`` holds (after rounding to cents).
MAX_AMOUNT = Decimal("9999999999999999.99")
#: Event and record times outside [MIN_TIME, MAX_TIME) are refused.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
#: Identifiers, kinds, steps, currencies: at most this many characters.
MAX_ID_LENGTH = 512
#: An error message: at most this many characters.
MAX_ERROR_MESSAGE = 8192
#: The payload as stored (compact JSON): at most this many bytes.
MAX_PAYLOAD_BYTES = 256 * 1024
#: Attempts, schema versions: 32-bit columns, and far below that in practice.
MAX_ATTEMPT = 1_000_000
_MAX_STATUS_CODE = 999
_CENT = Decimal("0.01")
_LIMIT = Decimal(10) ** 16


def _text_error(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        return f"{name}: {len(value)} characters, more than {limit}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name}: not valid Unicode text (a lone surrogate)"
    return None


def _amount_error(amount: Decimal | None) -> str | None:
    if amount is None:
        return None
    if not amount.is_finite():
        return f"amount: {amount} is not a finite number"
    # Compare before rounding: quantizing 1E+999999 to cents is itself an error.
    if abs(amount) >= _LIMIT:
        return f"amount: {amount} does not fit decimal(18,2) (|amount| < 10^16)"
    try:
        cents = amount.quantize(_CENT, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        return f"amount: {amount} cannot be rounded to cents"
    if abs(cents) > MAX_AMOUNT:
        return f"amount: {amount} rounds to {cents}, beyond decimal(18,2)"
    return None


def _time_error(name: str, value: datetime) -> str | None:
    if not MIN_TIME <= value < MAX_TIME:
        return f"{name}: {value.isoformat()} is outside [{MIN_TIME.year}, {MAX_TIME.year})"
    return None


def _int_error(name: str, value: int | None, low: int, high: int) -> str | None:
    if value is not None and not low <= value <= high:
        return f"{name}: {value} is outside [{low}, {high}]"
    return None


def _payload_error(payload: dict[str, Any]) -> str | None:
    try:
        size = len(pydantic_core.to_json(payload, fallback=str))
    except (ValueError, TypeError, RecursionError) as exc:
        # Lone surrogates, cycles and too-deep nesting: the store could not write it.
        return f"payload: cannot be stored as JSON ({type(exc).__name__})"
    if size > MAX_PAYLOAD_BYTES:
        return f"payload: {size} bytes as JSON, more than {MAX_PAYLOAD_BYTES}"
    return None


def envelope_bounds_error(event: Event) -> str | None:
    """The first bound ``event`` breaks, as ``"<field>: <why>"``, or ``None``.

    Checked: amount (fits ``decimal(18,2)``), event and record time (years 1970 to
    2199), every identifier (every text field of the envelope's layout without a
    limit of its own: at most ``MAX_ID_LENGTH`` characters of valid
    Unicode), the error (message length, status code), attempt and schema
    version (``1..MAX_ATTEMPT``), duration (finite, not negative) and the
    payload (at most ``MAX_PAYLOAD_BYTES`` as JSON).
    """
    problem = _amount_error(event.amount)
    if problem:
        return problem
    for name in ("event_time", "recorded_at"):
        problem = _time_error(name, getattr(event, name))
        if problem:
            return problem
    for name in layout_of(type(event)).identifiers:
        problem = _text_error(name, getattr(event, name), MAX_ID_LENGTH)
        if problem:
            return problem
    problem = _int_error("attempt", event.attempt, 1, MAX_ATTEMPT) or _int_error(
        "schema_version", event.schema_version, 0, MAX_ATTEMPT
    )
    if problem:
        return problem
    duration = event.duration_ms
    if duration is not None and not (math.isfinite(duration) and duration >= 0):
        return f"duration_ms: {duration} is not a finite, non-negative number"
    error = event.error
    if error is not None:
        problem = (
            _text_error("error.message", error.message, MAX_ERROR_MESSAGE)
            or _text_error("error.error_type", error.error_type, MAX_ID_LENGTH)
            or _int_error("error.status_code", error.status_code, 0, _MAX_STATUS_CODE)
        )
        if problem:
            return problem
    return _payload_error(event.payload)


def check_envelope_bounds(event: Event) -> None:
    """Raise :class:`~tracing.EnvelopeBoundsError` when ``event`` breaks a bound."""
    problem = envelope_bounds_error(event)
    if problem is not None:
        raise EnvelopeBoundsError(problem, field=problem.split(":", 1)[0])
