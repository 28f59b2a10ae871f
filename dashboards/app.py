"""Interlock's control plane: ``streamlit run dashboards/app.py``.

The navigation lists every file in ``dashboards/pages/`` sorted by name (see
``dashboards/_nav.py``); the sidebar shows which control API the app reads and takes
an optional API token for this session.
"""

from __future__ import annotations

import streamlit as st

from dashboards._client import ControlApiError, api_url
from dashboards._data import clear_cache, health
from dashboards._nav import discover_pages

st.set_page_config(page_title="Interlock", page_icon=":link:", layout="wide")

pages = [st.Page(spec.path, title=spec.title, url_path=spec.url_path) for spec in discover_pages()]
navigation = st.navigation(pages)

with st.sidebar:
    st.caption(f"Control API: `{api_url()}`")
    try:
        checks = health()
        problems = [f"{k}: {v}" for k, v in (checks.get("checks") or {}).items() if v != "ok"]
        st.caption(f"Collector: {checks.get('status', '?')} {'; '.join(problems)}".strip())
    except ControlApiError as exc:  # the page itself explains; the sidebar just flags it
        st.caption(f"Collector: unreachable ({exc.status or 'no answer'})")
    # Reads need no token in the demo; control actions on other pages do.
    st.text_input(
        "API token",
        type="password",
        key="api_token",
        help="Bearer token for control actions; defaults to INTERLOCK_API_TOKEN.",
    )
    if st.button("Refresh data", help="Reads are cached for a few seconds."):
        clear_cache()

navigation.run()
