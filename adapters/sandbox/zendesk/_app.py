"""The Zendesk Support API surface of the sandbox, as a Starlette app."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..salesforce._app import Endpoint, faults_endpoint, loopback_only
from ..salesforce._faults import Faults
from ._store import Invalid, NotFound, Store

__all__ = ["Account", "create_app"]

_MAX_PER_PAGE = 100
_RATE_LIMIT = 700


@dataclass(frozen=True)
class Account:
    """The agent the sandbox accepts: ``{email}/token:{api_token}`` over Basic auth."""

    email: str
    api_token: str


def _error(status: int, error: str, description: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if description is not None:
        body["description"] = description
    return JSONResponse(body, status)


def _encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": value}).encode()).decode().rstrip("=")


def _decode_cursor(value: str) -> int:
    try:
        padded = value + "=" * (-len(value) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        return int(data["s"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError("invalid cursor") from exc


def create_app(store: Store, account: Account) -> Starlette:
    """The app; ``store`` and ``account`` are the whole state."""
    faults = Faults()
    expected = (
        "Basic " + base64.b64encode(f"{account.email}/token:{account.api_token}".encode()).decode()
    )
    idempotency: dict[str, tuple[str, int, Any]] = {}
    lock = asyncio.Lock()

    def api(handler: Endpoint) -> Endpoint:
        """Basic auth, injected faults, and errors rendered as Zendesk renders them."""

        async def endpoint(request: Request) -> Response:
            if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
                return _error(401, "Couldn't authenticate you")
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            fault = faults.take()
            response: Response
            if fault == "rate_limit":
                response = _error(
                    429,
                    "APIRateLimitExceeded",
                    "Number of allowed API requests per minute exceeded",
                )
                response.headers["Retry-After"] = str(faults.retry_after)
                return response
            if fault == "fail":
                return _error(503, "ServiceUnavailable", "The sandbox was told to fail")
            try:
                response = await handler(request)
            except Invalid as exc:
                response = JSONResponse(
                    {
                        "error": "RecordInvalid",
                        "description": "Record validation errors",
                        "details": exc.details,
                    },
                    422,
                )
            except NotFound:
                response = _error(404, "RecordNotFound", "Not found")
            except ValueError as exc:
                response = _error(400, "InvalidValue", str(exc))
            response.headers["X-Rate-Limit"] = str(_RATE_LIMIT)
            response.headers["X-Rate-Limit-Remaining"] = str(_RATE_LIMIT - 1)
            return response

        return endpoint

    async def body_of(request: Request, key: str) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get(key), dict):
            raise ValueError(f"the body must be an object with a {key!r} object")
        return dict(data[key])

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def int_param(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise ValueError(f"{name} must be a non-negative integer")
        return int(raw)

    def paged(request: Request, key: str, rows: list[dict[str, Any]]) -> JSONResponse:
        """Cursor pagination (``page[size]``) or offset pagination (``page``)."""
        url = f"{base(request)}{request.url.path}"
        keep = {
            k: v
            for k, v in request.query_params.items()
            if not k.startswith("page") and k != "per_page"
        }
        rows.sort(key=lambda r: r["id"])
        if "page[size]" in request.query_params:
            size = min(int_param(request, "page[size]", 100), _MAX_PER_PAGE) or 1
            after = request.query_params.get("page[after]")
            if after:
                last = _decode_cursor(after)
                rows = [r for r in rows if r["id"] > last]
            page, more = rows[:size], len(rows) > size
            after_cursor = _encode_cursor(page[-1]["id"]) if page else None
            before_cursor = _encode_cursor(page[0]["id"]) if page else None
            next_link = (
                f"{url}?{urlencode({**keep, 'page[size]': size, 'page[after]': after_cursor})}"
                if more
                else None
            )
            return JSONResponse(
                {
                    key: page,
                    "meta": {
                        "has_more": more,
                        "after_cursor": after_cursor,
                        "before_cursor": before_cursor,
                    },
                    "links": {"next": next_link, "prev": None},
                }
            )
        per_page = min(int_param(request, "per_page", 100), _MAX_PER_PAGE) or 1
        number = max(int_param(request, "page", 1), 1)
        start = (number - 1) * per_page
        page = rows[start : start + per_page]

        def link(n: int) -> str:
            return f"{url}?{urlencode({**keep, 'page': n, 'per_page': per_page})}"

        return JSONResponse(
            {
                key: page,
                "next_page": link(number + 1) if start + per_page < len(rows) else None,
                "previous_page": link(number - 1) if number > 1 else None,
                "count": len(rows),
            }
        )

    async def replayed(request: Request, make: Callable[[], Awaitable[Response]]) -> Response:
        """Zendesk's ``Idempotency-Key`` on ticket creation: the first answer is replayed."""
        key = request.headers.get("idempotency-key")
        if not key:
            return await make()
        digest = hashlib.sha256(await request.body()).hexdigest()
        async with lock:
            if key in idempotency:
                seen_digest, status, body = idempotency[key]
                if seen_digest != digest:
                    return _error(
                        400,
                        "IdempotentRequestError",
                        "Idempotency key was used with a different request",
                    )
                hit = JSONResponse(body, status)
                hit.headers["x-idempotency-lookup"] = "hit"
                return hit
            response = await make()
            if response.status_code < 300:
                idempotency[key] = (digest, response.status_code, json.loads(bytes(response.body)))
                response.headers["x-idempotency-lookup"] = "miss"
            return response

    async def organizations(request: Request) -> Response:
        if request.method == "POST":
            # Zendesk honours Idempotency-Key on ticket creation only.
            data = await body_of(request, "organization")
            org = store.create_organization(data, base(request))
            return JSONResponse({"organization": org}, 201)
        return paged(request, "organizations", store.list_organizations())

    async def organization(request: Request) -> Response:
        org_id = int(request.path_params["org_id"])
        if request.method == "PUT":
            data = await body_of(request, "organization")
            return JSONResponse({"organization": store.update_organization(org_id, data)})
        return JSONResponse({"organization": store.get_organization(org_id)})

    async def search_organizations(request: Request) -> Response:
        where = {
            k: request.query_params[k] for k in ("external_id", "name") if k in request.query_params
        }
        if not where:
            raise ValueError("external_id or name is required")
        return paged(request, "organizations", store.find_organizations(**where))

    async def show_many_organizations(request: Request) -> Response:
        wanted = set(filter(None, request.query_params.get("external_ids", "").split(",")))
        ids = {int(i) for i in request.query_params.get("ids", "").split(",") if i.isdigit()}
        rows = [
            o for o in store.list_organizations() if o["external_id"] in wanted or o["id"] in ids
        ]
        return JSONResponse({"organizations": rows, "next_page": None, "previous_page": None})

    async def tickets(request: Request) -> Response:
        if request.method == "POST":

            async def make() -> Response:
                created = store.create_ticket(await body_of(request, "ticket"), base(request))
                return JSONResponse({"ticket": created, "audit": _audit(created)}, 201)

            return await replayed(request, make)
        rows = store.list_tickets(external_id=request.query_params.get("external_id"))
        return paged(request, "tickets", rows)

    async def ticket(request: Request) -> Response:
        ticket_id = int(request.path_params["ticket_id"])
        if request.method == "PUT":
            updated = store.update_ticket(ticket_id, await body_of(request, "ticket"))
            return JSONResponse({"ticket": updated, "audit": _audit(updated)})
        return JSONResponse({"ticket": store.get_ticket(ticket_id)})

    async def incremental(request: Request) -> Response:
        per_page = min(int_param(request, "per_page", 1000), 1000) or 1
        cursor = request.query_params.get("cursor")
        if cursor:
            after, start = _decode_cursor(cursor), None
        elif "start_time" in request.query_params:
            after, start = None, float(int_param(request, "start_time", 0))
        else:
            raise ValueError("start_time or cursor is required")
        rows, last, end = store.ticket_changes(start_time=start, after_seq=after, limit=per_page)
        after_cursor = _encode_cursor(last or 0)
        url = f"{base(request)}{request.url.path}"
        return JSONResponse(
            {
                "tickets": rows,
                "after_cursor": after_cursor,
                "after_url": f"{url}?{urlencode({'cursor': after_cursor})}",
                "before_cursor": None,
                "before_url": None,
                "end_of_stream": end,
            }
        )

    async def me(request: Request) -> Response:
        return JSONResponse(
            {
                "user": {
                    "id": 1,
                    "name": "Interlock integration",
                    "email": account.email,
                    "role": "admin",
                }
            }
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "organizations": len(store.organizations),
                "tickets": len(store.tickets),
                "faults": faults.snapshot(),
            }
        )

    async def unknown(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return _error(status, "InvalidEndpoint", "Not found")

    v2 = "/api/v2"
    return Starlette(
        exception_handlers={404: unknown, 405: unknown},
        routes=[
            Route(f"{v2}/users/me.json", api(me), methods=["GET"]),
            Route(f"{v2}/organizations.json", api(organizations), methods=["GET", "POST"]),
            Route(f"{v2}/organizations/search.json", api(search_organizations), methods=["GET"]),
            Route(
                f"{v2}/organizations/show_many.json",
                api(show_many_organizations),
                methods=["GET"],
            ),
            Route(
                f"{v2}/organizations/{{org_id:int}}.json",
                api(organization),
                methods=["GET", "PUT"],
            ),
            Route(f"{v2}/tickets.json", api(tickets), methods=["GET", "POST"]),
            Route(f"{v2}/tickets/{{ticket_id:int}}.json", api(ticket), methods=["GET", "PUT"]),
            Route(f"{v2}/incremental/tickets/cursor.json", api(incremental), methods=["GET"]),
            Route("/_sandbox/faults", loopback_only(faults_endpoint(faults)), methods=["POST"]),
            Route("/_sandbox/stats", loopback_only(stats), methods=["GET"]),
        ],
    )


def _audit(ticket: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ticket["id"] * 1000 + 1,
        "ticket_id": ticket["id"],
        "created_at": ticket["updated_at"],
        "author_id": 1,
        "events": [],
    }
