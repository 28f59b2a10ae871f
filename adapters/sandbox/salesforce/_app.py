"""The Salesforce REST API surface of the sandbox, as a Starlette app."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._faults import Faults
from ._store import SalesforceError, Store

__all__ = ["API_LIMIT", "JWT_BEARER", "Credentials", "create_app"]

API_LIMIT = 15000
#: Records per sObject Collections call, as Salesforce allows.
MAX_COLLECTION = 200
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Salesforce's session timeout setting (two hours is the org default).
SESSION_SECONDS = 7200.0
#: Salesforce refuses an assertion whose ``exp`` is further out than this.
_MAX_ASSERTION_SECONDS = 300
_VERSION = re.compile(r"^v(\d+)\.0$")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}

Handler = Callable[[Request, str], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def loopback_only(handler: Endpoint) -> Endpoint:
    """``handler`` answering only 127.0.0.1: the sandbox control routes are not the API."""

    async def endpoint(request: Request) -> Response:
        if request.client is None or request.client.host not in _LOOPBACK:
            return JSONResponse({"error": "sandbox control is loopback only"}, 403)
        return await handler(request)

    return endpoint


def faults_endpoint(faults: Faults) -> Endpoint:
    """``POST /_sandbox/faults``: configure ``faults`` from the JSON body; 400 if refused."""

    async def set_faults(request: Request) -> Response:
        try:
            return JSONResponse(faults.configure(json.loads(await request.body() or b"{}")))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)

    return set_faults


@dataclass
class Credentials:
    """The connected app and user the sandbox accepts, and the sessions it issued.

    ``jwt_public_key`` is the PEM public key (or X.509 certificate) uploaded to the
    connected app: JWT bearer assertions for ``client_id`` must verify against it.
    ``tokens`` maps each access token to the monotonic time it expires (``None``:
    the static token of the credentials file, which never expires).
    """

    client_id: str
    client_secret: str
    username: str
    password: str
    tokens: dict[str, float | None] = field(default_factory=dict)
    jwt_public_key: str | None = None
    session_seconds: float = SESSION_SECONDS
    #: Token requests answered, by grant type (``/_sandbox/stats`` shows them).
    token_requests: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, jwt_public_key: str | None = None) -> Credentials:
        return cls(
            client_id=data["client_id"],
            client_secret=data["client_secret"],
            username=data["username"],
            password=data["password"],
            tokens={data["token"]: None},
            jwt_public_key=jwt_public_key,
        )

    def issue(self) -> str:
        """A new session, valid for ``session_seconds``."""
        access = "00DWz0000000001!" + secrets.token_urlsafe(48)
        self.tokens[access] = time.monotonic() + self.session_seconds
        return access

    def valid(self, token: str) -> bool:
        if token not in self.tokens:
            return False
        expires = self.tokens[token]
        return expires is None or time.monotonic() < expires

    def expire_sessions(self) -> int:
        """End every issued session (not the static token), as a timeout would."""
        now = time.monotonic()
        ended = 0
        for token, expires in self.tokens.items():
            if expires is not None and expires > now:
                self.tokens[token] = now
                ended += 1
        return ended

    def check_assertion(self, assertion: str, audiences: list[str]) -> str | None:
        """Why a JWT bearer assertion is refused (``None``: it is good)."""
        if not self.jwt_public_key:
            return "this connected app has no certificate for the JWT bearer flow"
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.jwt_public_key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return "expired authorization code"
        except jwt.InvalidAudienceError:
            return "audience is invalid"
        except jwt.InvalidSignatureError:
            return "invalid assertion"
        except jwt.PyJWTError:
            return "invalid assertion"
        if header.get("alg") != "RS256":
            return "invalid assertion"
        if claims["iss"] != self.client_id:
            return "invalid client identifier"
        if claims["sub"] != self.username:
            return "user hasn't approved this consumer"
        if float(claims["exp"]) - time.time() > _MAX_ASSERTION_SECONDS:
            return "invalid assertion"
        return None


def _error(err: SalesforceError, store: Store) -> JSONResponse:
    return _json(err.body(), store, err.status)


def _json(body: Any, store: Store, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, headers=_limit_header(store))


def _limit_header(store: Store) -> dict[str, str]:
    return {"Sforce-Limit-Info": f"api-usage={store.api_requests}/{API_LIMIT}"}


def create_app(store: Store, credentials: Credentials) -> ASGIApp:
    """The app; ``store`` and ``credentials`` are the whole state."""
    faults = Faults()

    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Version check, bearer auth, injected faults and the usage counter."""

        async def endpoint(request: Request) -> Response:
            match = _VERSION.match(request.path_params["version"])
            if match is None or not 50 <= int(match.group(1)) <= 62:
                return _error(
                    SalesforceError(404, "NOT_FOUND", "The requested resource does not exist"),
                    store,
                )
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not credentials.valid(token):
                return _error(
                    SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid"),
                    store,
                )
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            used = store.count_request()
            fault = faults.take()
            if fault == "rate_limit" or used > API_LIMIT:
                return _error(
                    SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
                    store,
                )
            if fault == "fail":
                return _error(
                    SalesforceError(
                        503,
                        "SERVER_UNAVAILABLE",
                        "Server unavailable: the sandbox was told to fail this request",
                    ),
                    store,
                )
            try:
                return await handler(request, str(request.path_params["version"]))
            except SalesforceError as exc:
                return _error(exc, store)

        return endpoint

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError as exc:
            raise SalesforceError(400, "JSON_PARSER_ERROR", f"Unexpected JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        return data

    async def create(request: Request, version: str) -> Response:
        record_id = store.create(request.path_params["sobject"], await body_of(request))
        return _json({"id": record_id, "success": True, "errors": []}, store, 201)

    async def collection(request: Request, version: str) -> Response:
        """sObject Collections create (``POST composite/sobjects``): up to 200 records of
        any types in one call, each with ``attributes.type``; one result per record, in
        order, a failed one with its errors. Simplification: ``allOrNone`` true fails
        the call at the first failure, keeping the records made before it (Salesforce
        rolls them back)."""
        body = await body_of(request)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            raise SalesforceError(400, "INVALID_FIELD", "records: a non-empty list is required")
        if len(records) > MAX_COLLECTION:
            raise SalesforceError(
                400, "EXCEEDED_ID_LIMIT", f"record limit exceeded: {MAX_COLLECTION} at most"
            )
        results: list[dict[str, Any]] = []
        for raw in records:
            data = dict(raw) if isinstance(raw, dict) else {}
            sobject = str((data.pop("attributes", None) or {}).get("type") or "")
            try:
                if not sobject:
                    raise SalesforceError(400, "INVALID_TYPE", "attributes.type is required")
                results.append({"id": store.create(sobject, data), "success": True, "errors": []})
            except SalesforceError as exc:
                if body.get("allOrNone"):
                    raise
                results.append({"success": False, "errors": exc.body()})
        return _json(results, store)

    async def record(request: Request, version: str) -> Response:
        sobject, record_id = request.path_params["sobject"], request.path_params["record_id"]
        if request.method == "GET":
            raw = request.query_params.get("fields")
            fields = [f.strip() for f in raw.split(",") if f.strip()] if raw else None
            return _json(store.get(sobject, record_id, version, fields), store)
        if request.method == "PATCH":
            store.update(sobject, record_id, await body_of(request))
        else:
            store.delete(sobject, record_id)
        return Response(status_code=204, headers=_limit_header(store))

    def batch_size(request: Request) -> int | None:
        options = request.headers.get("sforce-query-options", "")
        found = re.search(r"batchSize=(\d+)", options)
        return int(found.group(1)) if found else None

    async def query(request: Request, version: str) -> Response:
        soql = request.query_params.get("q")
        if not soql:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string is required (q=)")
        include_deleted = request.url.path.rstrip("/").endswith("queryAll")
        page = store.query(
            soql, version=version, include_deleted=include_deleted, batch=batch_size(request)
        )
        return _json(page, store)

    async def query_more(request: Request, version: str) -> Response:
        locator, _, offset = request.path_params["locator"].rpartition("-")
        if not locator or not offset.isdigit():
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return _json(store.query_more(locator, int(offset), version=version), store)

    async def limits(request: Request, version: str) -> Response:
        used = store.api_requests
        return _json(
            {
                "DailyApiRequests": {"Max": API_LIMIT, "Remaining": max(0, API_LIMIT - used)},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
            },
            store,
        )

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        grant = form.get("grant_type")

        def oauth_error(code: str, text: str) -> Response:
            return JSONResponse({"error": code, "error_description": text}, 400)

        if grant not in ("client_credentials", "password", JWT_BEARER):
            return oauth_error("unsupported_grant_type", "grant type not supported")
        credentials.token_requests[grant] = credentials.token_requests.get(grant, 0) + 1
        if grant == JWT_BEARER:
            instance = str(request.base_url).rstrip("/")
            why = credentials.check_assertion(
                form.get("assertion", ""),
                [instance, "https://login.salesforce.com", "https://test.salesforce.com"],
            )
            if why is not None:
                return oauth_error("invalid_grant", why)
            # The JWT bearer flow answers no refresh token and no signature.
            return JSONResponse(
                {
                    "access_token": credentials.issue(),
                    "scope": "api",
                    "instance_url": instance,
                    "id": f"{instance}/id/00DWz0000000001AAA/005Wz0000000001AAA",
                    "token_type": "Bearer",
                }
            )
        client_ok = hmac.compare_digest(
            form.get("client_id", ""), credentials.client_id
        ) and hmac.compare_digest(form.get("client_secret", ""), credentials.client_secret)
        if not client_ok:
            return oauth_error("invalid_client", "invalid client credentials")
        if grant == "password" and not (
            form.get("username") == credentials.username
            and form.get("password", "").startswith(credentials.password)
        ):
            return oauth_error("invalid_grant", "authentication failure")
        access = credentials.issue()
        issued = str(int(time.time() * 1000))
        instance = str(request.base_url).rstrip("/")
        user_url = f"{instance}/id/00DWz0000000001AAA/005Wz0000000001AAA"
        digest = hmac.new(
            credentials.client_secret.encode(), (user_url + issued).encode(), hashlib.sha256
        ).digest()
        return JSONResponse(
            {
                "access_token": access,
                "instance_url": instance,
                "id": user_url,
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": base64.b64encode(digest).decode(),
            }
        )

    async def sessions(request: Request) -> Response:
        """``POST /_sandbox/sessions``: ``{"session_seconds": 2}`` sets the lifetime of new
        sessions, ``{"expire": true}`` ends every issued one (the static token stays)."""
        try:
            body = json.loads(await request.body() or b"{}")
            seconds = body.get("session_seconds")
            if seconds is not None:
                if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                    raise ValueError("session_seconds must be a number")
                if not 0 < seconds <= 86400:
                    raise ValueError("session_seconds must be in (0, 86400]")
                credentials.session_seconds = float(seconds)
            ended = credentials.expire_sessions() if body.get("expire") else 0
        except (ValueError, AttributeError) as exc:
            return JSONResponse({"error": f"bad sessions request: {exc}"}, 400)
        return JSONResponse({"session_seconds": credentials.session_seconds, "expired": ended})

    async def touch(request: Request) -> Response:
        try:
            stamp = store.touch(request.path_params["record_id"])
        except SalesforceError as exc:
            return _error(exc, store)
        return JSONResponse({"id": request.path_params["record_id"], "SystemModstamp": stamp})

    async def clock(request: Request) -> Response:
        """``POST /_sandbox/clock`` ``{"offset_seconds": -3600}``: the org's time runs that far
        off real time, so a test can close deals "an hour ago" (an outage) without waiting."""
        try:
            body = json.loads(await request.body() or b"{}")
            offset = body["offset_seconds"]
            if isinstance(offset, bool) or not isinstance(offset, int | float):
                raise ValueError("offset_seconds must be a number")
            now = store.set_clock_offset(float(offset))
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad clock request: {exc}"}, 400)
        return JSONResponse({"now": now.isoformat(), "offset_seconds": float(offset)})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                **store.stats(),
                "faults": faults.snapshot(),
                "token_requests": dict(credentials.token_requests),
            }
        )

    async def versions(request: Request) -> Response:
        return JSONResponse(
            [
                {"label": f"v{n}", "url": f"/services/data/v{n}.0", "version": f"{n}.0"}
                for n in range(50, 63)
            ]
        )

    base = "/services/data/{version}"
    routes = [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/data", versions, methods=["GET"]),
        Route("/services/data/", versions, methods=["GET"]),
        Route("/_sandbox/faults", loopback_only(faults_endpoint(faults)), methods=["POST"]),
        Route("/_sandbox/touch/{record_id}", loopback_only(touch), methods=["POST"]),
        Route("/_sandbox/stats", loopback_only(stats), methods=["GET"]),
        Route("/_sandbox/clock", loopback_only(clock), methods=["POST"]),
        Route("/_sandbox/sessions", loopback_only(sessions), methods=["POST"]),
    ]
    for suffix in ("", "/"):
        routes += [
            Route(f"{base}/limits{suffix}", api(limits), methods=["GET"]),
            Route(f"{base}/query{suffix}", api(query), methods=["GET"]),
            Route(f"{base}/queryAll{suffix}", api(query), methods=["GET"]),
            Route(f"{base}/sobjects/{{sobject}}{suffix}", api(create), methods=["POST"]),
            Route(f"{base}/composite/sobjects{suffix}", api(collection), methods=["POST"]),
        ]
    routes += [
        Route(f"{base}/query/{{locator}}", api(query_more), methods=["GET"]),
        Route(f"{base}/queryAll/{{locator}}", api(query_more), methods=["GET"]),
        Route(
            f"{base}/sobjects/{{sobject}}/{{record_id}}",
            api(record),
            methods=["GET", "PATCH", "DELETE"],
        ),
    ]

    async def unknown(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        code = "METHOD_NOT_ALLOWED" if status == 405 else "NOT_FOUND"
        return _error(SalesforceError(status, code, "The requested resource does not exist"), store)

    app = Starlette(routes=routes, exception_handlers={404: unknown, 405: unknown})
    return _LimitInfo(app, store)


class _LimitInfo:
    """Adds ``Sforce-Limit-Info`` to every response, as Salesforce does."""

    def __init__(self, app: Starlette, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "sforce-limit-info" not in headers:
                    headers.update(_limit_header(self.store))
            await send(message)

        await self.app(scope, receive, with_header)
