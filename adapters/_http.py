"""The HTTP boundary shared by every adapter: one place where httpx outcomes become
Interlock errors, so retry logic reads ``retriable`` and never a status code."""

from __future__ import annotations

import email.utils
import ssl
import time
from types import TracebackType
from typing import Any, Self

import httpx

from tracing import (
    AuthError,
    ConflictError,
    DownstreamUnavailable,
    IntegrationError,
    RateLimited,
    RemoteError,
    ValidationError,
    inject_headers,
)

__all__ = [
    "HttpAdapter",
    "inject_trace_context",
    "json_or_error",
    "parse_retry_after",
    "raise_for_response",
    "tls_verify",
    "translate_transport_error",
]


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


def tls_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx's ``verify`` for a flag or a CA bundle path (httpx deprecates ``verify=<str>``)."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


async def inject_trace_context(request: httpx.Request) -> None:
    """An httpx request hook: the current span's ``traceparent``/``tracestate``.

    The httpx instrumentation (``setup_tracing``) replaces them with its client
    span's, a child of the same trace; without it the call still carries the
    caller's trace, flags and tracestate.
    """
    if "traceparent" not in request.headers:
        request.headers.update(inject_headers({}))


class HttpAdapter:
    """Base of the async adapters: an ``httpx.AsyncClient`` and its lifecycle.

    A ``client`` given by the caller is used as is and never closed here;
    otherwise one is made from ``client_options`` and closed by :meth:`aclose`,
    with :func:`inject_trace_context` among its request hooks.
    An async context manager. ``repr`` shows only :meth:`_repr_args`, which
    subclasses fill with what is safe to log, so credentials never appear.
    """

    def __init__(self, client: httpx.AsyncClient | None = None, **client_options: Any) -> None:
        self._owns_client = client is None
        if client is None:
            hooks = dict(client_options.pop("event_hooks", None) or {})
            hooks["request"] = [inject_trace_context, *hooks.get("request", [])]
            client = httpx.AsyncClient(event_hooks=hooks, **client_options)
        self._client = client

    def _repr_args(self) -> str:
        """The text between the parentheses of ``repr``: never a secret."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_args()})"

    async def aclose(self) -> None:
        """Close the HTTP client if this adapter created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
