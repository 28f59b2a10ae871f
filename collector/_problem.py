"""The control API's one error body: RFC 9457 problem details (``application/problem+json``).

Every 4xx and 5xx of the control API answers a :class:`Problem`::

    {"type": "about:blank", "title": "Not Found", "status": 404,
     "detail": "no transaction c-1", "instance": "/api/v1/transactions/c-1"}

``detail`` is the one readable reason (what clients show); a 422 adds ``errors``, one
entry per invalid field. An :class:`tracing.InterlockError` that reaches the app answers
its class's ``http_status`` with its message as ``detail`` (and a string ``code``
attribute, when it has one, as ``error``); an :class:`tracing.UnauthorizedError` adds
``WWW-Authenticate``; a store or bus failure answers 503 with ``Retry-After`` and a detail
that names what is unavailable, never the storage engine's own text (that goes to the log).

This module is the one place an error becomes an answer: routers raise error classes,
never ``HTTPException`` or a hand-built error response
(``tests/collector/test_problem_from_errors.py`` keeps it so).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracing import BusError, InterlockError, StoreError, UnauthorizedError

__all__ = ["PROBLEM_JSON", "Problem", "ProblemField", "install_problem_handlers", "problem"]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
#: Statuses a client may retry: their answers always carry ``Retry-After``.
_RETRYABLE = frozenset({429, 503})


class ProblemField(BaseModel):
    """One invalid part of a request (a 422's ``errors``)."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="where: e.g. ['query', 'limit']")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error answer."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="a URI naming the problem type")
    title: str = Field(description="the HTTP status phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="the reason, readable by a person")
    instance: str | None = Field(None, description="the request path")
    errors: list[ProblemField] | None = Field(None, description="422 only: each invalid field")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem-details answer; ``extra`` adds extension members (RFC 9457 section 3.2)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    out = dict(headers or {})
    if status in _RETRYABLE and not any(k.lower() == "retry-after" for k in out):
        # Every 429 and 503 tells the client when to come back, whoever raised it.
        out["Retry-After"] = RETRY_AFTER_SECONDS
    return JSONResponse(body, status_code=status, headers=out, media_type=PROBLEM_JSON)


def _field(err: Mapping[str, Any]) -> dict[str, Any]:
    loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
    return {"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}


def install_problem_handlers(
    app: FastAPI, *, allowed: Callable[[str], Sequence[str]] | None = None
) -> None:
    """Make every error of ``app`` a :class:`Problem`.

    ``allowed(path)`` lists every method a path takes: a 405's ``Allow`` header then
    names them all (the router names only those of the first route that matched).
    """

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and allowed is not None:
            methods = allowed(request.url.path)
            if methods:
                headers["Allow"] = ", ".join(methods)
        return problem(exc.status_code, str(exc.detail), instance=request.url.path, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [_field(err) for err in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(p) for p in f['loc'])}: {f['msg']}" for f in fields)
        return problem(422, detail or "invalid request", instance=request.url.path, errors=fields)

    @app.exception_handler(InterlockError)
    async def _ours(request: Request, exc: InterlockError) -> JSONResponse:
        status = exc.http_status
        headers: dict[str, str] = {}
        detail = exc.message
        if isinstance(exc, StoreError | BusError):
            # The engine's own text (DuckDB, Kafka) stays in the log, not in the answer.
            what = "lineage store" if isinstance(exc, StoreError) else "event bus"
            log.warning("%s unavailable answering %s: %s", what, request.url.path, exc.message)
            detail = f"the {what} is unavailable; retry later"
            headers["Retry-After"] = RETRY_AFTER_SECONDS
        elif status >= 500:
            log.error("error answering %s: %s", request.url.path, exc.message)
        if isinstance(exc, UnauthorizedError):
            headers["WWW-Authenticate"] = exc.challenge
        after = getattr(exc, "retry_after", None)
        if status in _RETRYABLE and isinstance(after, int | float) and after > 0:
            headers["Retry-After"] = str(max(1, math.ceil(after)))
        # A stable machine-readable name of the failure (the Stripe webhook's reason).
        code = getattr(exc, "code", None)
        extra = {"error": str(code)} if isinstance(code, str) else None
        return problem(status, detail, instance=request.url.path, headers=headers, extra=extra)
