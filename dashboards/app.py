"""Interlock's control plane: ``streamlit run dashboards/app.py``.

The sidebar signs in with a role token (checked by the control API's ``whoami``); the
navigation then lists the pages of ``dashboards/pages/`` that role may use (see
``dashboards/_nav.py``). The executive view opens on the SLA report and shows only the
SLA pages; ``?view=executive`` links straight to it. A sign-in survives a reload and a
deep link: the browser keeps a cookie with an opaque session ID, never the token
(``dashboards/_kept.py``).
"""

from __future__ import annotations

import streamlit as st

from dashboards._client import ControlApiError, ControlApiUnavailable, api_url
from dashboards._data import clear_cache, health
from dashboards._kept import write_cookie
from dashboards._nav import discover_pages
from dashboards._session import (
    VIEWS,
    current,
    restore_sign_in,
    sign_in,
    sign_out,
    view,
    visible_pages,
)

st.set_page_config(page_title="Interlock", page_icon=":link:", layout="wide")


def _sign_in() -> None:
    """Form callback: runs before the script, so the whole page renders signed in."""
    st.session_state["signin_error"] = ""
    try:
        sign_in(st.session_state.get("signin_token", ""), st.session_state.get("signin_view", ""))
    except ControlApiUnavailable as exc:
        st.session_state["signin_error"] = f"The control API is unreachable ({exc.detail})."
    except ControlApiError as exc:
        st.session_state["signin_error"] = f"Not signed in ({exc.status}): {exc.detail}"
    else:
        clear_cache()
    st.session_state["signin_token"] = ""  # never keep the typed secret in a widget


def _sign_out() -> None:
    sign_out()
    clear_cache()


restore_sign_in()  # a reload or a deep link keeps the sign-in (dashboards/_kept.py)
me = current()
chosen_view = view()
specs = visible_pages(discover_pages(), me, chosen_view)
pages = [
    st.Page(s.path, title=s.title, url_path=s.url_path, default=i == 0) for i, s in enumerate(specs)
]
# Every page the role may use is listed: Streamlit folds a list past ten pages behind
# "View more", which hid the last pages (Reconciliation, Customers, Runbooks).
navigation = st.navigation(pages, expanded=True)

with st.sidebar:
    write_cookie()
    if me is not None and st.session_state.get("api_token"):
        st.markdown(f"Signed in as **{me.name}** · role **{me.role}** · {chosen_view} view")
        if me.role == "viewer":
            st.caption("A viewer reads only, as visitors who have not signed in do here; acting "
                       "needs an operator, approver or admin token.")  # fmt: skip
        st.button("Sign out", key="sign_out", on_click=_sign_out)
    else:
        if me is None:
            st.warning("Sign in: the control API refuses reads without a known token.")
        else:
            st.caption(f"Reading as **{me.name}** ({me.role}). Sign in to act.")
        with st.form("sign_in_form"):
            st.text_input(
                "Role token",
                type="password",
                key="signin_token",
                help="An API token from INTERLOCK_TOKENS or the demo's tokens.txt.",
            )
            st.radio(
                "View",
                VIEWS,
                index=VIEWS.index(chosen_view),
                horizontal=True,
                key="signin_view",
                help="Executive opens on the SLA report.",
            )
            st.form_submit_button("Sign in", on_click=_sign_in)
        if problem := st.session_state.get("signin_error"):
            st.error(problem)
    # A link, not a widget: the new page load keeps the sign-in (dashboards/_kept.py).
    other = "operations" if chosen_view == "executive" else "executive"
    st.markdown(f"[Switch to the {other} view](./?view={other})")
    st.divider()
    st.caption(f"Control API: `{api_url()}`")
    try:
        checks = health()
        problems = [f"{k}: {v}" for k, v in (checks.get("checks") or {}).items() if v != "ok"]
        st.caption(f"Collector: {checks.get('status', '?')} {'; '.join(problems)}".strip())
    except ControlApiError as exc:  # the page itself explains; the sidebar just flags it
        st.caption(f"Collector: unreachable ({exc.status or 'no answer'})")
    if st.button("Refresh data", help="Reads are cached for a few seconds."):
        clear_cache()

navigation.run()
