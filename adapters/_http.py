"""The HTTP boundary shared by every adapter: one place where httpx outcomes become
Interlock errors, so retry logic reads ``retriable`` and never a status code."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from tracing import (
    AuthError,
    ConflictError,
    DownstreamUnavailable,
    IntegrationError,
    RateLimited,
    RemoteError,
    ValidationError,
)

__all__ = ["json_or_error", "parse_retry_after", "raise_for_response", "translate_transport_error"]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _detail(response: httpx.Response) -> str:
    text = response.text[:300]
    request = response.request
    return f"HTTP {response.status_code} from {request.method} {request.url.path}: {text}"


def raise_for_response(response: httpx.Response, *, system: str) -> None:
    """Raise the Interlock error that matches an unsuccessful response."""
    status = response.status_code
    if status < 400:
        return
    detail = _detail(response)
    if status == 429:
        raise RateLimited(
            detail,
            system=system,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        raise AuthError(detail, system=system, status=status)
    if status in (409, 412):
        raise ConflictError(detail, system=system, status=status)
    if status in (400, 404, 422):
        raise ValidationError(detail, system=system)
    if status in (502, 503, 504) or status >= 500:
        error = DownstreamUnavailable(detail, system=system, status=status)
        raise error
    raise RemoteError(detail, system=system, status=status)


def translate_transport_error(exc: httpx.HTTPError, *, system: str) -> IntegrationError:
    """The Interlock error for an httpx failure that produced no response."""
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return DownstreamUnavailable(f"{type(exc).__name__}: {exc}", system=system)
    return RemoteError(f"{type(exc).__name__}: {exc}", system=system)


def json_or_error(response: httpx.Response, *, system: str) -> Any:
    raise_for_response(response, system=system)
    try:
        return response.json()
    except ValueError as exc:
        raise RemoteError(f"non-JSON answer: {response.text[:200]}", system=system) from exc
