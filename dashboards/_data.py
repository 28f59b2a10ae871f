"""Every read the pages make, cached briefly with ``st.cache_data``.

Pages call these and never the client directly, so the cache policy lives in one
place. The cache key includes the API URL and token: pointing the dashboard at
another collector never serves the first one's numbers. Errors are not cached
(``st.cache_data`` only keeps return values), so a collector that comes back up is
seen on the next rerun.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ._client import ControlApiError, api_token, api_url, client_for

__all__ = [
    "REFRESH_SECONDS",
    "clear_cache",
    "dead_letters",
    "get",
    "health",
    "lanes",
    "optional",
    "stats",
    "transaction",
    "transactions",
]

#: How long a read is reused. Short: the dashboard watches a live system.
REFRESH_SECONDS = 5


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _health(url: str, token: str | None) -> dict[str, Any]:
    return client_for(url, token).health()


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _stats(url: str, token: str | None) -> dict[str, Any]:
    return client_for(url, token).stats()


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _transactions(
    url: str, token: str | None, limit: int, offset: int, state: str | None, q: str | None
) -> dict[str, Any]:
    return client_for(url, token).transactions(limit=limit, offset=offset, state=state, q=q)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _transaction(url: str, token: str | None, correlation_id: str) -> dict[str, Any]:
    return client_for(url, token).transaction(correlation_id)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _dead_letters(
    url: str,
    token: str | None,
    state: str | None,
    reason: str | None,
    step: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    return client_for(url, token).dead_letters(
        state=state, reason=reason, step=step, limit=limit, offset=offset
    )


def health() -> dict[str, Any]:
    """``/healthz``: ``{"status": "ok"|"degraded", "checks": {...}}``."""
    return _health(api_url(), api_token())


def stats() -> dict[str, Any]:
    """``/api/v1/stats``."""
    return _stats(api_url(), api_token())


def transactions(
    *, limit: int = 50, offset: int = 0, state: str | None = None, q: str | None = None
) -> dict[str, Any]:
    """``/api/v1/transactions``: ``{"items": [...], "total": n}``, newest first."""
    return _transactions(api_url(), api_token(), limit, offset, state or None, q or None)


def transaction(correlation_id: str) -> dict[str, Any]:
    """``/api/v1/transactions/{id}``: summary plus ``events``; 404 is ``ControlApiError``."""
    return _transaction(api_url(), api_token(), correlation_id)


def dead_letters(
    *,
    state: str | None = "open",
    reason: str | None = None,
    step: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """``/api/v1/dead-letters``: ``{"items": [...], "total": n}``."""
    return _dead_letters(
        api_url(), api_token(), state or None, reason or None, step or None, limit, offset
    )


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _get(url: str, token: str | None, path: str, params: tuple[tuple[str, Any], ...]) -> Any:
    return client_for(url, token).get_json(path, **dict(params))


def get(path: str, **params: Any) -> Any:
    """Any JSON read of the control API (``/api/v1/sla``, ``/api/v1/adapters`` ...), cached."""
    return _get(api_url(), api_token(), path, tuple(sorted(params.items())))


def optional(path: str, **params: Any) -> Any | None:
    """``get``, but ``None`` when this collector does not serve ``path`` (404): a page
    section then says so instead of failing the whole page."""
    try:
        return get(path, **params)
    except ControlApiError as exc:
        if exc.status == 404:
            return None
        raise


def lanes() -> list[str]:
    """The systems' names in lane order, as the control API declares them (empty when
    it does not serve ``/api/v1/systems``: lanes then sort by name)."""
    listed = optional("/api/v1/systems")
    return [str(s["name"]) for s in (listed or {}).get("systems", [])]


def clear_cache() -> None:
    """Forget every cached read (after a control action, or on "Refresh")."""
    for cached in (_health, _stats, _transactions, _transaction, _dead_letters, _get):
        cached.clear()
