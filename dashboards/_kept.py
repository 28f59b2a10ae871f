"""Sign-ins that survive a reload and a deep link, without the token in the URL.

Streamlit starts a new session on every page load, so a token kept only in
``st.session_state`` is lost by a reload or by opening a ``?cid=`` link. On sign-in the
dashboard keeps the token in this process under a random session ID and gives the
browser only that ID, as the cookie ``interlock_session``; a new session whose page
load carries a live ID (``st.context.cookies``) is signed in again.

The ID is 32 random bytes, derived from nothing (not the token, not the user); the
store is keyed by its SHA-256, so the store alone cannot be turned back into a cookie.
A kept sign-in ends after ``IDLE_SECONDS`` without a page load, after ``MAX_SECONDS``
in any case, on sign-out (the entry is dropped and the cookie cleared), when the
control API stops accepting the token, and when the dashboard restarts. The cookie is
written by a script (Streamlit offers no response header), so it cannot be HttpOnly:
what a script could read is this opaque, short-lived ID, never the token.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

__all__ = [
    "COOKIE",
    "IDLE_SECONDS",
    "MAX_SECONDS",
    "Kept",
    "KeptSignIns",
    "browser_cookie",
    "cookie_script",
    "forget",
    "keep",
    "kept_sign_ins",
    "restore",
    "write_cookie",
]

COOKIE = "interlock_session"
#: A kept sign-in ends after this long without a page load ...
IDLE_SECONDS = 60 * 60
#: ... and this long after the sign-in, however busy.
MAX_SECONDS = 12 * 60 * 60
_PENDING = "_kept_cookie"  # session key: the cookie the next render writes
_SID = "kept_sid"  # session key: this session's kept ID


@dataclass(slots=True)
class Kept:
    """One kept sign-in: the token (never sent to the browser), the view, its deadlines."""

    token: str
    view: str
    idle_until: float
    ends_at: float


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class KeptSignIns:
    """Kept sign-ins by session ID, shared by every session of this dashboard process.

    >>> store = KeptSignIns()
    >>> sid = store.keep("tok", "operations")
    >>> store.take(sid).token, store.take("forged"), "tok" in sid
    ('tok', None, False)
    """

    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle_seconds
        self._max = max_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[str, Kept] = {}

    def keep(self, token: str, view: str) -> str:
        """Keep ``token`` and return the new opaque ID the browser gets instead."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            self._by_key[_key(sid)] = Kept(token, view, now + self._idle, now + self._max)
        return sid

    def take(self, sid: str) -> Kept | None:
        """The sign-in kept under ``sid`` (its idle deadline renewed), or ``None``."""
        now = self._clock()
        with self._lock:
            kept = self._by_key.get(_key(sid))
            if kept is None or now >= min(kept.idle_until, kept.ends_at):
                self._by_key.pop(_key(sid), None)
                return None
            kept.idle_until = now + self._idle
            return kept

    def drop(self, sid: str) -> None:
        with self._lock:
            self._by_key.pop(_key(sid), None)

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired(self._clock())
            return len(self._by_key)

    def _drop_expired(self, now: float) -> None:
        gone = [k for k, v in self._by_key.items() if now >= min(v.idle_until, v.ends_at)]
        for key in gone:
            del self._by_key[key]


@st.cache_resource(show_spinner=False)
def kept_sign_ins() -> KeptSignIns:
    """This dashboard process's kept sign-ins."""
    return KeptSignIns()


def browser_cookie() -> str | None:
    """The session ID the browser sent with this page load, if any."""
    value = st.context.cookies.get(COOKIE)
    # AppTest's stand-in runtime answers a mock here, not a string.
    return value if isinstance(value, str) and value else None


def keep(token: str, view: str) -> None:
    """Keep this session's sign-in for the browser; the cookie is written on this render."""
    old = st.session_state.get(_SID)
    if old:
        kept_sign_ins().drop(old)
    sid = kept_sign_ins().keep(token, view)
    st.session_state[_SID] = sid
    st.session_state[_PENDING] = (sid, MAX_SECONDS)


def forget() -> None:
    """Forget this browser's kept sign-in: the server-side entry and the cookie."""
    for sid in {st.session_state.pop(_SID, None), browser_cookie()}:
        if sid:
            kept_sign_ins().drop(sid)
    st.session_state[_PENDING] = ("", 0)


def restore(still_valid: Callable[[str], bool]) -> bool:
    """Sign this new session in again from the browser's cookie, if it holds a live ID
    whose token ``still_valid`` accepts (an entry whose token it refuses is dropped).
    Returns whether the session was restored."""
    if st.session_state.get("api_token") or st.session_state.get("signed_out"):
        return False
    sid = browser_cookie()
    if not sid:
        return False
    kept = kept_sign_ins().take(sid)
    if kept is None or not still_valid(kept.token):
        kept_sign_ins().drop(sid)
        st.session_state[_PENDING] = ("", 0)  # a dead ID: clear the cookie
        return False
    st.session_state["api_token"] = kept.token
    # A link that names its view (``?view=executive``) wins over the one signed in with.
    st.session_state["view"] = st.query_params.get("view") or kept.view
    st.session_state[_SID] = sid
    return True


def cookie_script(sid: str, max_age: int) -> str:
    """The script that sets (``max_age`` > 0) or clears the cookie on the app's page.

    ``SameSite=Lax`` so a deep link followed from an alert e-mail or chat still carries
    it; ``Secure`` whenever the page is served over HTTPS.
    """
    cookie = f"{COOKIE}={sid}; Path=/; Max-Age={int(max_age)}; SameSite=Lax"
    return (
        "<script>document.cookie = "
        f"{cookie!r} + (location.protocol === 'https:' ? '; Secure' : '');</script>"
    )


def write_cookie() -> None:
    """Write (or clear) the cookie a sign-in or sign-out asked for; call once per render."""
    pending = st.session_state.pop(_PENDING, None)
    if pending is None:
        return
    sid, max_age = pending
    st.html(cookie_script(sid, max_age), unsafe_allow_javascript=True)
