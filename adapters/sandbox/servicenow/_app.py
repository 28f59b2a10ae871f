"""The ServiceNow Table API surface of the sandbox, as a Starlette app.

``/api/now/table/{table}`` (GET list, POST) and ``/api/now/table/{table}/{sys_id}``
(GET, PATCH, PUT, DELETE), also under ``/api/now/v2/table``; ``/oauth_token.do``
(password, client_credentials and refresh_token grants). Basic auth or an OAuth
bearer token; errors as ``{"error": {"message", "detail"}, "status": "failure"}``;
``X-Total-Count`` and a ``Link`` header on lists; 429 with ``Retry-After`` when a
fault is injected under ``/_sandbox/``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..salesforce._app import Endpoint, faults_endpoint, loopback_only
from ..salesforce._faults import Faults
from ._query import QueryError, parse_query
from ._store import Invalid, NotFound, Store, UnknownTable

__all__ = ["Credentials", "create_app"]

_TOKEN_LIFETIME = 1799  # seconds, an instance's default for OAuth access tokens
_RATE_LIMIT = 5000  # requests an hour, what X-RateLimit-Limit reports
_MAX_LIMIT = 10000  # glide.db.max_view_records


@dataclass
class Credentials:
    """The integration user and the OAuth application the instance knows."""

    username: str
    password: str
    client_id: str
    client_secret: str
    tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credentials:
        return cls(
            username=data["username"],
            password=data["password"],
            client_id=data["client_id"],
            client_secret=data["client_secret"],
        )


def _error(status: int, message: str, detail: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "detail": detail}, "status": "failure"}, status
    )


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def create_app(store: Store, credentials: Credentials) -> Starlette:
    """The app; ``store`` and ``credentials`` are the whole state."""
    faults = Faults()

    def authenticated(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return any(_same(value, t) for t in list(credentials.tokens))
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return _same(user, credentials.username) and _same(password, credentials.password)
        return False

    def api(handler: Endpoint) -> Endpoint:
        """Authentication, injected faults, and errors rendered as the Table API does."""

        async def endpoint(request: Request) -> Response:
            if not authenticated(request):
                return _error(401, "User Not Authenticated", "Required to provide Auth information")
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            fault = faults.take()
            response: Response
            if fault == "rate_limit":
                response = _error(
                    429,
                    "Rate limit exceeded",
                    f"Rate limit of {_RATE_LIMIT} requests per hour for the user exceeded",
                )
                response.headers["Retry-After"] = str(faults.retry_after)
                response.headers["X-RateLimit-Limit"] = str(_RATE_LIMIT)
                response.headers["X-RateLimit-Remaining"] = "0"
                return response
            if fault == "fail":
                return _error(503, "Service Unavailable", "The sandbox was told to fail")
            try:
                response = await handler(request)
            except UnknownTable as exc:
                response = _error(400, f"Invalid table {exc}")
            except NotFound:
                response = _error(
                    404,
                    "No Record found",
                    "Record doesn't exist or ACL restricts the record retrieval",
                )
            except Invalid as exc:
                response = _error(exc.status, exc.message, exc.detail)
            except QueryError as exc:
                response = _error(400, "Invalid query", str(exc))
            except ValueError as exc:
                response = _error(400, "Exception while reading request", str(exc))
            response.headers["X-RateLimit-Limit"] = str(_RATE_LIMIT)
            return response

        return endpoint

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError as exc:
            raise ValueError("The payload is not valid JSON.") from exc
        if not isinstance(data, dict):
            raise ValueError("The payload must be a JSON object.")
        return data

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def int_param(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit():
            raise ValueError(f"{name} must be a non-negative integer")
        return int(raw)

    def rendered(request: Request, table: str, record: dict[str, str]) -> dict[str, Any]:
        params = request.query_params
        display = params.get("sysparm_display_value", "false").lower()
        if display not in ("true", "false", "all"):
            display = "false"
        fields = [f for f in params.get("sysparm_fields", "").split(",") if f.strip()]
        links = params.get("sysparm_exclude_reference_link", "false").lower() != "true"
        return store.render(
            table,
            record,
            display=display,
            fields=[f.strip() for f in fields] or None,
            links=links,
            base_url=base(request),
        )

    async def collection(request: Request) -> Response:
        table = request.path_params["table"]
        if request.method == "POST":
            created = store.insert(table, await body_of(request))
            response = JSONResponse({"result": rendered(request, table, created)}, 201)
            response.headers["Location"] = (
                f"{base(request)}/api/now/table/{table}/{created['sys_id']}"
            )
            return response
        params = request.query_params
        query = parse_query(params.get("sysparm_query"))
        rows = store.query(table, query)
        offset = int_param(request, "sysparm_offset", 0)
        limit = min(int_param(request, "sysparm_limit", _MAX_LIMIT), _MAX_LIMIT)
        page = rows[offset : offset + limit] if limit else []
        response = JSONResponse({"result": [rendered(request, table, r) for r in page]})
        response.headers["X-Total-Count"] = str(len(rows))
        if params.get("sysparm_suppress_pagination_header", "false").lower() != "true" and limit:
            response.headers["Link"] = _links(request, base(request), len(rows), offset, limit)
        return response

    async def record(request: Request) -> Response:
        table, sys_id = request.path_params["table"], request.path_params["sys_id"]
        if request.method == "DELETE":
            store.delete(table, sys_id)
            return Response(status_code=204)
        if request.method in ("PATCH", "PUT"):
            updated = store.update(table, sys_id, await body_of(request))
            return JSONResponse({"result": rendered(request, table, updated)})
        return JSONResponse({"result": rendered(request, table, store.get(table, sys_id))})

    async def oauth_token(request: Request) -> Response:
        """``/oauth_token.do``: a form post answering an OAuth 2.0 token response."""
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        denied = JSONResponse({"error_description": "access_denied", "error": "server_error"}, 401)
        client_ok = _same(form.get("client_id", ""), credentials.client_id) and _same(
            form.get("client_secret", ""), credentials.client_secret
        )
        if not client_ok:
            return denied
        grant = form.get("grant_type")
        if grant == "password":
            if not (
                _same(form.get("username", ""), credentials.username)
                and _same(form.get("password", ""), credentials.password)
            ):
                return denied
        elif grant == "refresh_token":
            if form.get("refresh_token") not in credentials.refresh_tokens:
                return denied
        elif grant != "client_credentials":
            return JSONResponse(
                {"error_description": "unsupported_grant_type", "error": "invalid_request"}, 400
            )
        token, refresh = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        credentials.tokens.add(token)
        credentials.refresh_tokens.add(refresh)
        return JSONResponse(
            {
                "access_token": token,
                "refresh_token": refresh,
                "scope": form.get("scope") or "useraccount",
                "token_type": "Bearer",
                "expires_in": _TOKEN_LIFETIME,
            }
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "tables": {name: len(rows) for name, rows in store.records.items()},
                "faults": faults.snapshot(),
            }
        )

    async def revoke(request: Request) -> Response:
        """``POST /_sandbox/revoke_tokens``: every access token issued so far stops working."""
        revoked = len(credentials.tokens)
        credentials.tokens.clear()
        return JSONResponse({"revoked": revoked})

    async def data_policy(request: Request) -> Response:
        """``POST /_sandbox/data_policy`` ``{"table", "field", "mandatory"}``: an admin's
        data policy, so tests can make the instance refuse a write the way a real one would."""
        try:
            body = json.loads(await request.body() or b"{}")
            store.set_data_policy(
                str(body["table"]), str(body["field"]), mandatory=bool(body.get("mandatory", True))
            )
        except (ValueError, KeyError, TypeError, UnknownTable) as exc:
            return JSONResponse({"error": f"bad data policy: {exc}"}, 400)
        return JSONResponse({"data_policies": sorted(map(list, store.data_policies))})

    async def unknown(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 400)
        if status == 405:
            return _error(405, "Method not Supported", f"{request.method} is not supported")
        return _error(400, "Requested URI does not represent any resource", request.url.path)

    routes: list[Route] = []
    for prefix in ("/api/now/table", "/api/now/v2/table", "/api/now/v1/table"):
        routes += [
            Route(f"{prefix}/{{table}}", api(collection), methods=["GET", "POST"]),
            Route(
                f"{prefix}/{{table}}/{{sys_id}}",
                api(record),
                methods=["GET", "PATCH", "PUT", "DELETE"],
            ),
        ]
    return Starlette(
        exception_handlers={404: unknown, 405: unknown},
        routes=[
            *routes,
            Route("/oauth_token.do", oauth_token, methods=["POST"]),
            Route("/_sandbox/faults", loopback_only(faults_endpoint(faults)), methods=["POST"]),
            Route("/_sandbox/stats", loopback_only(stats), methods=["GET"]),
            Route("/_sandbox/revoke_tokens", loopback_only(revoke), methods=["POST"]),
            Route("/_sandbox/data_policy", loopback_only(data_policy), methods=["POST"]),
        ],
    )


def _links(request: Request, base: str, total: int, offset: int, limit: int) -> str:
    """The ``Link`` header of a list: first, prev, next and last pages."""
    keep = {k: v for k, v in request.query_params.items() if k not in ("sysparm_offset",)}
    keep["sysparm_limit"] = str(limit)
    url = f"{base}{request.url.path}"

    def at(start: int) -> str:
        return f"{url}?{urlencode({**keep, 'sysparm_offset': max(start, 0)})}"

    last = ((max(total, 1) - 1) // limit) * limit
    links = [f'<{at(0)}>;rel="first"']
    if offset > 0:
        links.append(f'<{at(offset - limit)}>;rel="prev"')
    if offset + limit < total:
        links.append(f'<{at(offset + limit)}>;rel="next"')
    links.append(f'<{at(last)}>;rel="last"')
    return ",".join(links)
