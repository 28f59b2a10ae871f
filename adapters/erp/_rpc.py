"""Tryton's JSON-RPC over httpx: session login, user context, error translation.

Every call is ``POST /<db>/rpc/`` with ``{"id", "method", "params"}``. The
session comes from ``common.db.login`` and goes back as
``Authorization: Session base64("<login>:<uid>:<token>")``; the user's
preferences (company, language) are the context, always the last parameter.

How Tryton's outcomes become Interlock errors:

    connection refused, timeout, HTTP 5xx   -> DownstreamUnavailable (retriable)
    HTTP 401 on a call                      -> log in again once and retry, then AuthError
    HTTP 401/403 on login, LoginException   -> AuthError
    HTTP 429, RateLimitException            -> RateLimited
    ["UserWarning", [key, message, ...]]    -> ConflictError (never overridden here)
    ["UserError", [message, ...]]           -> ValidationError, or ConflictError for a
                                               workflow transition (``transition=True``)
    ["ConcurrencyException", message]       -> ConflictError
    any other error body (a server fault)   -> RemoteError

The password and the session token never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from decimal import Decimal
from typing import Any

import httpx

from adapters._http import raise_for_response, translate_transport_error
from adapters.erp._codec import dumps, loads
from tracing import (
    AuthError,
    ConflictError,
    RateLimited,
    RemoteError,
    ValidationError,
)

__all__ = ["SYSTEM", "CreditHold", "TrytonRpc"]

SYSTEM = "erp"
log = logging.getLogger("interlock.adapters.erp")


class CreditHold(ConflictError):
    """The ERP refused a sale because the party would exceed its credit limit.

    ``party_id``, ``exposure`` (the party's credit amount) and ``limit`` are set
    where the adapter read them (``TrytonAdapter.confirm_sale``); ``amount`` is the
    sale's total."""

    def __init__(
        self,
        message: str,
        *,
        warning_key: str | None = None,
        party_id: int | None = None,
        exposure: Decimal | None = None,
        limit: Decimal | None = None,
        amount: Decimal | None = None,
    ) -> None:
        super().__init__(message, system=SYSTEM)
        self.warning_key = warning_key
        self.party_id = party_id
        self.exposure = exposure
        self.limit = limit
        self.amount = amount


class _SessionExpired(Exception):
    """Internal signal: the server answered 401 to a call made with a session."""


class TrytonRpc:
    """One logged-in JSON-RPC channel to a Tryton database."""

    def __init__(
        self,
        url: str,
        database: str,
        user: str,
        password: str,
        *,
        client: httpx.AsyncClient,
    ) -> None:
        self._endpoint = f"{url.rstrip('/')}/{database}/rpc/"
        self._user = user
        self._password = password
        self._client = client
        self._auth: str | None = None
        self._context: dict[str, Any] = {}
        self._uid: int | None = None
        self._login_lock = asyncio.Lock()
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"TrytonRpc({self._endpoint!r}, user={self._user!r})"

    @property
    def context(self) -> dict[str, Any]:
        """The user's preferences (a copy), sent as every call's last parameter."""
        return dict(self._context)

    @property
    def user_id(self) -> int | None:
        """The logged-in user's ID (``None`` before the first call)."""
        return self._uid

    async def login(self) -> None:
        """Open a session and load the user context."""
        async with self._login_lock:
            await self._login_locked()

    async def _login_locked(self) -> None:
        answer = await self._post(
            "common.db.login", [self._user, {"password": self._password}, "en"], auth=None
        )
        if answer.status_code in (401, 403):
            raise AuthError(
                f"Tryton rejected the login of {self._user!r}",
                system=SYSTEM,
                status=answer.status_code,
            )
        result = self._result("common.db.login", answer, transition=False)
        if not isinstance(result, list) or len(result) < 2:
            raise AuthError(f"Tryton refused the login of {self._user!r}", system=SYSTEM)
        token = f"{self._user}:{result[0]}:{result[1]}"
        auth = "Session " + base64.b64encode(token.encode()).decode("ascii")
        answer = await self._post("model.res.user.get_preferences", [True, {}], auth=auth)
        if answer.status_code == 401:
            raise AuthError("Tryton dropped a session it had just opened", system=SYSTEM)
        preferences = self._result("get_preferences", answer, transition=False)
        if not isinstance(preferences, dict):
            raise RemoteError("Tryton preferences are not an object", system=SYSTEM)
        # Both at once: a half-finished login must not leave a session without its context.
        self._auth, self._context = auth, preferences
        self._uid = int(result[0])
        log.debug("logged in to %s as %s", self._endpoint, self._user)

    async def call(self, method: str, *params: Any, transition: bool = False) -> Any:
        """Call ``method`` with ``params`` and the user context; the decoded result.

        ``transition`` marks workflow buttons (quote, confirm, post): a Tryton
        ``UserError`` there is the target refusing by a business rule, so it
        becomes ``ConflictError`` rather than ``ValidationError``.
        """
        if self._auth is None:
            async with self._login_lock:
                if self._auth is None:
                    await self._login_locked()
        used = self._auth
        try:
            return await self._call_once(method, params, transition=transition)
        except _SessionExpired:
            pass
        # The session expired (idle timeout, server restart): log in again once,
        # unless a concurrent call already did.
        async with self._login_lock:
            if self._auth == used:
                await self._login_locked()
        try:
            return await self._call_once(method, params, transition=transition)
        except _SessionExpired as exc:
            raise AuthError(
                f"Tryton answered 401 to {method} after a fresh login", system=SYSTEM, status=401
            ) from exc

    async def _call_once(self, method: str, params: tuple[Any, ...], *, transition: bool) -> Any:
        started = time.perf_counter()
        answer = await self._post(method, [*params, self._context], auth=self._auth)
        if answer.status_code == 401:
            raise _SessionExpired()
        result = self._result(method, answer, transition=transition)
        log.debug("%s took %.1f ms", method, (time.perf_counter() - started) * 1000)
        return result

    async def _post(self, method: str, params: list[Any], *, auth: str | None) -> httpx.Response:
        body = dumps({"id": next(self._ids), "method": method, "params": params})
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        try:
            return await self._client.post(self._endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, system=SYSTEM) from exc

    def _result(self, method: str, answer: httpx.Response, *, transition: bool) -> Any:
        # 401 never gets here: callers turn it into a re-login or an AuthError first.
        raise_for_response(answer, system=SYSTEM)
        try:
            payload = loads(answer.content)
        except ValueError as exc:
            raise RemoteError(f"{method}: Tryton answered non-JSON", system=SYSTEM) from exc
        if not isinstance(payload, dict):
            raise RemoteError(f"{method}: Tryton answered a non-object", system=SYSTEM)
        error = payload.get("error")
        if error is None:
            return payload.get("result")
        raise _translate_error(method, error, transition=transition)


def _text(value: Any) -> str:
    return str(value)[:500]


def _translate_error(method: str, error: Any, *, transition: bool) -> Exception:
    """The Interlock error for a JSON-RPC error body ``[name, args]``."""
    name = error[0] if isinstance(error, list) and error else error
    args = error[1] if isinstance(error, list) and len(error) > 1 else None
    if name == "UserWarning" and isinstance(args, list) and len(args) >= 2:
        key, message = str(args[0]), _text(args[1])
        # The warning key is structured ("<hash>.credit_limit_amount"), not prose.
        if key.rsplit(".", 1)[-1].startswith("credit_limit"):
            return CreditHold(f"credit hold: {message}", warning_key=key)
        return ConflictError(f"{method}: Tryton warning: {message}", system=SYSTEM)
    if name == "UserError":
        message = _text(args[0]) if isinstance(args, list) and args else _text(args)
        if transition:
            return ConflictError(f"{method}: Tryton refused: {message}", system=SYSTEM)
        return ValidationError(f"{method}: Tryton rejected: {message}", system=SYSTEM)
    if name == "ConcurrencyException":
        return ConflictError(f"{method}: concurrent change: {_text(args)}", system=SYSTEM)
    if name == "LoginException":
        return AuthError(f"{method}: Tryton asks for another login", system=SYSTEM)
    if name == "RateLimitException":
        return RateLimited(f"{method}: Tryton rate limit", system=SYSTEM)
    # A server fault: the second element is a traceback, which stays on the server.
    return RemoteError(f"{method}: Tryton fault: {_text(name)}", system=SYSTEM)
