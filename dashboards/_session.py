"""Who is using the dashboard: sign-in with a role token, the role, and the view.

The control API is the authority: a token is checked with its ``whoami``, and
every action the pages offer is also refused by the API for a role below it. The
dashboard only hides what a role cannot do, so nobody is offered a button that fails.

Two views: ``operations`` (opens on the operations home) and ``executive`` (opens on the
SLA report, its home, with the SLA pages only). The view is a presentation choice, not a
role.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import streamlit as st

from . import _data as data
from . import _kept as kept
from ._client import ControlApiError
from ._nav import PageSpec

__all__ = [
    "EXECUTIVE_HOME",
    "EXECUTIVE_PAGES",
    "ROLES",
    "VIEWS",
    "Principal",
    "can",
    "current",
    "restore_sign_in",
    "sign_in",
    "sign_out",
    "token_accepted",
    "view",
    "visible_pages",
]

#: Roles in increasing power, as the control API orders them.
ROLES = ("viewer", "operator", "approver", "admin")
VIEWS = ("operations", "executive")
#: URL paths of the pages the executive view shows; the first is its home (the SLA
#: report: the period, the trend against the previous one, the top incidents by impact).
#: The operations home is not among them: an executive switches view to see it.
EXECUTIVE_PAGES = ("Reports", "SLAs", "Alerts")
#: The navigation title of the executive view's first page.
EXECUTIVE_HOME = "Home: SLA report"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller as the API sees it; ``known`` is false when the API has no whoami."""

    name: str
    role: str
    known: bool = True


def can(principal: Principal | None, role: str) -> bool:
    """Whether ``principal`` has ``role`` or a stronger one.

    >>> can(Principal("olga", "operator"), "viewer"), can(Principal("vic", "viewer"), "operator")
    (True, False)
    """
    if principal is None or principal.role not in ROLES or role not in ROLES:
        return False
    return ROLES.index(principal.role) >= ROLES.index(role)


def current() -> Principal | None:
    """The signed-in principal (anonymous viewer without a token), or ``None`` when the
    API refuses this token or cannot be reached (the page explains either)."""
    try:
        body = data.whoami()  # cached, per URL and token
    except ControlApiError as exc:
        if exc.status == 404:  # a collector without the replay router: reads only
            return Principal("anonymous", "viewer", known=False)
        return None
    return Principal(str(body.get("name", "?")), str(body.get("role", "viewer")))


def view() -> str:
    """``executive`` or ``operations``: the session's choice, else ``?view=`` in the URL."""
    chosen = st.session_state.get("view") or st.query_params.get("view") or "operations"
    return chosen if chosen in VIEWS else "operations"


def sign_in(token: str, chosen_view: str = "operations") -> Principal:
    """Check ``token`` against the API and keep it for this session.

    Raises ``ControlApiError`` (401 for an unknown token) without keeping anything.
    """
    body = data.check_token(token.strip() or None)
    st.session_state["api_token"] = token.strip()
    st.session_state["view"] = chosen_view if chosen_view in VIEWS else "operations"
    st.session_state.pop("signed_out", None)
    if token.strip():  # kept for a reload or a deep link (dashboards/_kept.py)
        kept.keep(token.strip(), st.session_state["view"])
    else:
        kept.forget()
    data.clear_cache()
    return Principal(str(body.get("name", "?")), str(body.get("role", "viewer")))


def sign_out() -> None:
    """Forget this session's token and view, and the browser's kept sign-in (the
    server-side entry and the cookie)."""
    kept.forget()
    st.session_state["api_token"] = ""
    st.session_state["signed_out"] = True
    st.session_state.pop("view", None)
    data.clear_cache()


def token_accepted(token: str) -> bool:
    """Whether the control API still takes ``token`` (a kept sign-in is restored only
    then). An unreachable API is not a refusal: the page explains it and the sign-in stays."""
    try:
        data.check_token(token)
    except ControlApiError as exc:
        return exc.status not in (401, 403)
    return True


def restore_sign_in() -> bool:
    """Sign a new session (a reload, a deep link) in again from the browser's kept ID."""
    return kept.restore(token_accepted)


def visible_pages(
    specs: Sequence[PageSpec], principal: Principal | None, chosen_view: str
) -> list[PageSpec]:
    """The pages the navigation lists, the first being where the app opens.

    Without a principal (the API refused or is down) every page is listed: each then
    explains the problem itself. The executive view lists ``EXECUTIVE_PAGES`` in order.
    """
    shown = [s for s in specs if principal is None or can(principal, s.min_role)]
    if chosen_view == "executive":
        order = {path: i for i, path in enumerate(EXECUTIVE_PAGES)}
        shown = sorted((s for s in shown if s.url_path in order), key=lambda s: order[s.url_path])
        if shown:
            shown[0] = replace(shown[0], title=EXECUTIVE_HOME)
    return shown
