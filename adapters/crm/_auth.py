"""How the Salesforce adapter gets its session: a static token, or the OAuth 2.0 JWT
bearer flow of a connected app.

    InterlockError
     └── IntegrationError
          └── AuthError
               ├── TokenRequestRefused   the token endpoint said no (bad key, expired
               │                         assertion, unknown user): ``oauth_error`` names why
               └── SessionRejected       a freshly issued session was refused too

Neither is retriable: a wrong key or a revoked app does not heal by asking again, so
a step fails at once instead of storming the token endpoint.

The JWT bearer flow (Salesforce's "OAuth 2.0 JWT Bearer Flow for Server-to-Server
Integration"): the adapter signs ``{iss: consumer key, sub: username, aud: login URL,
exp: now + 3 min}`` with the connected app's RSA key (RS256) and posts
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`` to
``<login URL>/services/oauth2/token``. The answer carries no refresh token and no
expiry, so the session is renewed by signing a new assertion, before the org's
session timeout passes and whenever the org answers 401 ``INVALID_SESSION_ID``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt

from tracing import AuthError, DownstreamUnavailable

from .._http import translate_transport_error

__all__ = [
    "JWT_BEARER",
    "JwtBearer",
    "JwtBearerAuth",
    "SessionAuth",
    "SessionRejected",
    "StaticToken",
    "TokenRequestRefused",
]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: How long a signed assertion is good for (Salesforce accepts at most a few minutes).
ASSERTION_SECONDS = 180
SYSTEM = "crm"


class TokenRequestRefused(AuthError):
    """The token endpoint refused the assertion; ``oauth_error`` is its ``error`` code."""

    def __init__(self, message: str, *, oauth_error: str | None, status: int | None) -> None:
        super().__init__(message, system=SYSTEM, status=status)
        self.oauth_error = oauth_error


class SessionRejected(AuthError):
    """The org answered 401 to a session the token endpoint had just issued."""


class SessionAuth(Protocol):
    """What the adapter asks of its credentials."""

    #: Whether a 401 is worth one new session (a static token cannot be renewed).
    renewable: bool

    async def token(self) -> str:
        """A session believed valid (issued now if there is none or it is too old)."""
        ...

    async def renew(self, stale: str) -> str:
        """A session other than ``stale``: one token request however many callers ask."""
        ...


class StaticToken:
    """A session ID handed in by configuration (tests, benches, a CLI-minted token)."""

    renewable = False

    def __init__(self, access_token: str) -> None:
        self._token = access_token

    def __repr__(self) -> str:
        return "StaticToken(***)"

    async def token(self) -> str:
        return self._token

    async def renew(self, stale: str) -> str:
        return self._token


@dataclass(frozen=True)
class JwtBearer:
    """A connected app's JWT bearer settings. ``private_key`` is PEM text (never shown).

    ``login_url`` is where the token is requested and the assertion's ``aud``
    (``https://login.salesforce.com``, ``https://test.salesforce.com`` for a
    sandbox org, or the org's own URL); ``session_seconds`` is the org's session
    timeout.
    """

    login_url: str
    consumer_key: str
    username: str
    private_key: str = field(repr=False)
    audience: str | None = None
    session_seconds: float = 7200.0


class JwtBearerAuth:
    """Sessions from the JWT bearer flow, renewed single-flight.

    ``private_key`` is the PEM text of the connected app's RSA key; it is kept only
    for signing and never shown in ``repr``. ``session_seconds`` is the org's session
    timeout (two hours by default): a session older than that minus ``margin`` is
    renewed before use. Concurrent callers that find no valid session wait on one
    token request; a caller whose session was refused gets a new one unless another
    caller already replaced it.
    """

    renewable = True

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: JwtBearer,
        *,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._token_url = config.login_url.rstrip("/") + "/services/oauth2/token"
        self._audience = (config.audience or config.login_url).rstrip("/")
        self._consumer_key = config.consumer_key
        self._username = config.username
        self._private_key = config.private_key
        session_seconds = config.session_seconds
        # Renew a little before the org's timeout, so a request never races it.
        self._lifetime = (
            session_seconds - margin if session_seconds > 2 * margin else (session_seconds / 2)
        )
        self._clock = clock
        self._wall = wall  # the assertion's exp is wall-clock time (a test can skew it)
        self._lock = asyncio.Lock()
        self._session: str | None = None
        self._expires = 0.0
        #: Token requests made (tests and the adapters page read it).
        self.requests = 0

    def __repr__(self) -> str:
        return f"JwtBearerAuth(token_url={self._token_url!r}, username={self._username!r})"

    def _fresh(self) -> str | None:
        if self._session is not None and self._clock() < self._expires:
            return self._session
        return None

    async def token(self) -> str:
        session = self._fresh()
        if session is not None:
            return session
        async with self._lock:
            return self._fresh() or await self._request()

    async def renew(self, stale: str) -> str:
        async with self._lock:
            if self._session is not None and self._session != stale and self._fresh():
                return self._session  # another caller already renewed it
            return await self._request()

    def _assertion(self) -> str:
        now = int(self._wall())
        claims = {
            "iss": self._consumer_key,
            "sub": self._username,
            "aud": self._audience,
            "exp": now + ASSERTION_SECONDS,
        }
        return jwt.encode(claims, self._private_key, algorithm="RS256")

    async def _request(self) -> str:
        self.requests += 1
        self._session = None
        try:
            assertion = self._assertion()
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            # A key that is not an RSA private key: configuration, not the org.
            raise TokenRequestRefused(
                f"the CRM private key cannot sign an assertion: {type(exc).__name__}",
                oauth_error=None,
                status=None,
            ) from exc
        try:
            answer = await self._client.post(
                self._token_url,
                data={"grant_type": JWT_BEARER, "assertion": assertion},
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, system=SYSTEM) from exc
        body = _json(answer)
        if answer.status_code != 200 or not isinstance(body.get("access_token"), str):
            if answer.status_code >= 500:
                raise DownstreamUnavailable(
                    f"token endpoint answered HTTP {answer.status_code}",
                    system=SYSTEM,
                    status=answer.status_code,
                )
            code = body.get("error") if isinstance(body.get("error"), str) else None
            text = body.get("error_description") or answer.text[:200]
            raise TokenRequestRefused(
                f"JWT bearer token request refused: {code}: {text}",
                oauth_error=code,
                status=answer.status_code,
            )
        self._session = body["access_token"]
        self._expires = self._clock() + self._lifetime
        return self._session


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
