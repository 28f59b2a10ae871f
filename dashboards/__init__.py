"""The Streamlit control plane (``streamlit run dashboards/app.py``) and its client of
the collector's control API. Pages live in ``dashboards/pages/`` and read through
``dashboards._data``; the dashboard never opens the lineage store itself."""

from ._client import (
    DEFAULT_API_URL,
    ControlApiError,
    ControlApiUnavailable,
    ControlClient,
    api_token,
    api_url,
    client_for,
    get_client,
)

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
