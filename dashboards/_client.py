"""The dashboard's client of the collector's control API.

The dashboard never opens the DuckDB lineage file (the collector is its one writer);
everything it shows comes over HTTP from the control API. httpx outcomes become our
errors here and nowhere else:

    InterlockError                      (tracing)
    └── ControlApiError                 the API answered 4xx/5xx or something unreadable
        └── ControlApiUnavailable       no answer at all: refused, timed out (status 0)
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx
import streamlit as st

from tracing import InterlockError, Reason

__all__ = [
    "DEFAULT_API_URL",
    "ControlApiError",
    "ControlApiUnavailable",
    "ControlClient",
    "api_token",
    "api_url",
    "client_for",
    "get_client",
]

DEFAULT_API_URL = "http://127.0.0.1:7400"


class ControlApiError(InterlockError):
    """The control API answered with an error, or with something we cannot read.

    ``status`` is the HTTP status (0 when there was no answer) and ``detail`` the
    API's ``{"detail": ...}`` reason, or a short description of what was wrong.
    """

    def __init__(self, status: int, detail: str, *, url: str = "") -> None:
        where = f" from {url}" if url else ""
        super().__init__(f"control API {status}{where}: {detail}", system="interlock")
        self.status = status
        self.detail = detail
        self.url = url


class ControlApiUnavailable(ControlApiError):
    """The control API could not be reached (connection refused, timeout)."""

    reason = Reason.DOWNSTREAM_UNAVAILABLE
    retriable = True

    def __init__(self, detail: str, *, url: str = "") -> None:
        super().__init__(0, detail, url=url)


def _clean_params(params: dict[str, Any]) -> dict[str, Any]:
    """Drop unset filters so the API applies its own defaults."""
    return {key: value for key, value in params.items() if value is not None and value != ""}


def _detail_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        # FastAPI's 422 carries a list of field problems; keep it readable.
        return detail if isinstance(detail, str) else str(detail)[:300]
    return str(body)[:200]


class ControlClient:
    """A synchronous client of the control API with short timeouts.

    >>> client = ControlClient("http://127.0.0.1:7400")
    >>> client.stats()["transactions_total"]  # doctest: +SKIP
    42
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # Connecting should be near-instant on loopback; a slow connect means it is down.
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            transport=transport,
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ControlClient({self.base_url!r})"

    # -- raw calls ---------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ControlApiUnavailable(f"timed out ({type(exc).__name__})", url=url) from exc
        except httpx.TransportError as exc:
            raise ControlApiUnavailable(f"cannot connect ({exc})", url=url) from exc

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_error:
            raise ControlApiError(
                response.status_code, _detail_of(response), url=str(response.request.url)
            )
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ControlApiError(
                response.status_code, "answer is not JSON", url=str(response.request.url)
            ) from exc

    def get_json(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params`` (``None``/empty dropped) and decode JSON."""
        response = self._check(self._send("GET", path, params=_clean_params(params)))
        return self._json(response)

    def post_json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a JSON ``body`` to ``path`` and decode the JSON answer (``None`` if empty)."""
        response = self._check(self._send("POST", path, json=body or {}))
        if not response.content:
            return None
        return self._json(response)

    def get_bytes(self, path: str, **params: Any) -> bytes:
        """GET ``path`` and return the raw body (reports, ``/metrics``)."""
        return self._check(self._send("GET", path, params=_clean_params(params))).content

    # -- the contract ------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``. A degraded collector may answer 503 with the same body."""
        response = self._send("GET", "/healthz")
        if response.status_code == 503:
            body = self._json(response)
            if isinstance(body, dict) and "status" in body:
                return body
        return self._as_dict(self._json(self._check(response)), "/healthz")

    def stats(self) -> dict[str, Any]:
        """``GET /api/v1/stats``: counts, values by state, backlog."""
        return self._as_dict(self.get_json("/api/v1/stats"), "/api/v1/stats")

    def transactions(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        state: str | None = None,
        q: str | None = None,
    ) -> dict[str, Any]:
        """``GET /api/v1/transactions``: ``{"items": [...], "total": n}``, newest first."""
        body = self.get_json("/api/v1/transactions", limit=limit, offset=offset, state=state, q=q)
        return self._as_page(body, "/api/v1/transactions")

    def transaction(self, correlation_id: str) -> dict[str, Any]:
        """``GET /api/v1/transactions/{id}``: the summary plus its ``events``.

        Raises ``ControlApiError`` with status 404 when there is no such transaction.
        """
        path = f"/api/v1/transactions/{quote(correlation_id, safe='')}"
        return self._as_dict(self.get_json(path), path)

    def dead_letters(
        self,
        *,
        state: str | None = "open",
        reason: str | None = None,
        step: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """``GET /api/v1/dead-letters``: ``{"items": [...], "total": n}``."""
        body = self.get_json(
            "/api/v1/dead-letters",
            state=state,
            reason=reason,
            step=step,
            limit=limit,
            offset=offset,
        )
        return self._as_page(body, "/api/v1/dead-letters")

    def _as_dict(self, body: Any, path: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ControlApiError(200, "expected a JSON object", url=f"{self.base_url}{path}")
        return body

    def _as_page(self, body: Any, path: str) -> dict[str, Any]:
        page = self._as_dict(body, path)
        if not isinstance(page.get("items"), list) or not isinstance(page.get("total"), int):
            raise ControlApiError(
                200, "expected {items: [...], total: n}", url=f"{self.base_url}{path}"
            )
        return page


def api_url() -> str:
    """The control API base URL: ``INTERLOCK_API_URL``, read on every call."""
    return os.environ.get("INTERLOCK_API_URL", "").strip() or DEFAULT_API_URL


def api_token() -> str | None:
    """The bearer token: the one typed in this session, else ``INTERLOCK_API_TOKEN``."""
    token = st.session_state.get("api_token") or os.environ.get("INTERLOCK_API_TOKEN")
    text = str(token).strip() if token else ""
    return text or None


@st.cache_resource(show_spinner=False)
def client_for(base_url: str, token: str | None) -> ControlClient:
    """The shared client for one URL and token, kept across reruns and sessions."""
    return ControlClient(base_url, token)


def get_client() -> ControlClient:
    """The shared client for the current URL and token (``api_url()``, ``api_token()``)."""
    return client_for(api_url(), api_token())
