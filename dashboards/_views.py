"""Pieces every page shares: calling the API with the standard error states, links.

A page does ``stats = call(data.stats)``; when the collector is down the page shows
where it looked and how to start it, then stops, instead of a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar
from urllib.parse import quote

import streamlit as st

from ._client import ControlApiError, ControlApiUnavailable, api_url

__all__ = [
    "TRANSACTIONS_URL_PATH",
    "call",
    "show_api_error",
    "transaction_link",
]

P = ParamSpec("P")
T = TypeVar("T")

#: The URL path of ``pages/02_Transactions.py`` (see ``_nav.url_path_for``).
TRANSACTIONS_URL_PATH = "Transactions"


def transaction_link(correlation_id: str) -> str:
    """A relative link to one transaction's timeline, e.g. ``./Transactions?cid=c-1``.

    Relative, so it keeps working behind a proxy that serves the app under a prefix.
    """
    return f"./{TRANSACTIONS_URL_PATH}?cid={quote(correlation_id, safe='')}"


def show_api_error(exc: ControlApiError) -> NoReturn:
    """Explain a failed API call on the page, then stop the script run."""
    if isinstance(exc, ControlApiUnavailable):
        st.error(
            f"The control API is unreachable at {api_url()} ({exc.detail}).\n\n"
            "Start Interlock with `make run` (it serves the control API on "
            "127.0.0.1:7400), or point `INTERLOCK_API_URL` at a running collector."
        )
    elif exc.status in (401, 403):
        st.error(
            f"The control API refused this read ({exc.status}: {exc.detail}). "
            "Sign in with a role API token in the sidebar, or set `INTERLOCK_API_TOKEN`."
        )
    else:
        st.error(f"The control API answered {exc.status}: {exc.detail}")
    st.stop()
    raise AssertionError("st.stop() returned")  # st.stop raises; this keeps mypy honest


def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``, turning a control API failure into its page message."""
    try:
        return fn(*args, **kwargs)
    except ControlApiError as exc:
        show_api_error(exc)
