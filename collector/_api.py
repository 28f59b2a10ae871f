"""The control API: JSON over HTTP, served by the collector (the lineage's one writer).

Reads need a viewer token unless ``require_auth_for_reads`` is false;
control actions live in the routers other packages pass in (webhooks, SLA,
replay), each guarding itself with ``require_role``. Every error answers
``{"detail": "<reason>"}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import duckdb
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tracing import StoreError

from ._auth import Role, TokenStore, require_role
from ._lineage import TRANSACTION_STATES, AsyncLineage
from ._metrics import Metrics
from ._schema import UNRESOLVED_DEAD_LETTER_STATES

__all__ = ["DEAD_LETTER_STATES", "create_app"]

#: Every state a dead letter can be in (``all`` or empty in a query means any).
DEAD_LETTER_STATES = (*UNRESOLVED_DEAD_LETTER_STATES, "resolved", "ignored")
_MAX_LIMIT = 1000


class _BadParam(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _int_param(name: str, raw: str | None, default: int, *, low: int, high: int) -> int:
    """An integer query parameter; empty means the default (the dashboard sends
    ``limit=`` when a field is blank)."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParam(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise _BadParam(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(name: str, raw: str | None, allowed: Sequence[str]) -> str | None:
    if raw is None or raw.strip() == "" or raw == "all":
        return None
    if raw not in allowed:
        raise _BadParam(f"unknown {name} {raw!r}; expected one of {', '.join(allowed)} or all")
    return raw


def _text(raw: str | None) -> str | None:
    return raw.strip() or None if raw is not None else None


async def _lineage_check(lineage: AsyncLineage) -> str:
    def probe(cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute("SELECT 1").fetchone()

    try:
        await lineage.read(probe)
    except StoreError as exc:
        return f"error: {exc.message}"
    return "ok"


def create_app(
    *,
    lineage: AsyncLineage,
    metrics: Metrics,
    tokens: TokenStore,
    routers: Sequence[APIRouter] = (),
    health: Callable[[], Awaitable[dict[str, str]]] | None = None,
    title: str = "Interlock control API",
    require_auth_for_reads: bool = True,
) -> FastAPI:
    """The control API app; ``app.state`` holds ``tokens``, ``lineage`` and ``metrics``.

    ``health`` adds checks to ``/healthz`` (e.g. ``{"bus": "ok"}``); any value other
    than ``"ok"`` makes the status ``degraded``.
    """
    app = FastAPI(title=title)
    app.state.tokens = tokens
    app.state.lineage = lineage
    app.state.metrics = metrics
    # Reads are the viewer role: anonymous unless ``require_auth_for_reads`` is set
    # (the runtime may also set it on ``app.state`` later); an unknown token is
    # refused even for reads.
    app.state.require_auth_for_reads = require_auth_for_reads
    read_deps = [Depends(require_role(Role.VIEWER))]
    api = APIRouter(prefix="/api/v1", tags=["lineage"])

    @app.exception_handler(_BadParam)
    async def _bad_param(_: Request, exc: _BadParam) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable string, as every error of this API answers.
        parts = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors()
        ]
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"lineage store unavailable: {exc.message}"}, status_code=503
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, Any]:
        """``ok`` when every check is ``ok``, else ``degraded`` (still HTTP 200)."""
        checks = {"lineage": await _lineage_check(lineage)}
        if health is not None:
            try:
                extra = await health()
            # The health callback is a report: its failure is a finding, not a 500.
            except Exception as exc:
                extra = {"health": f"error: {type(exc).__name__}"}
            # Our own probe of the store is the truth about the lineage.
            checks.update({k: v for k, v in extra.items() if k != "lineage"})
        status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
        return {"status": status, "checks": checks}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of the collector's registry."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @api.get("/stats")
    async def stats() -> dict[str, Any]:
        """Totals for the overview page."""
        result = await lineage.stats()
        result["bus_backlog"] = metrics.backlog()
        return result

    @api.get("/transactions")
    async def list_transactions(
        limit: str | None = None,
        offset: str | None = None,
        state: str | None = None,
        q: str | None = None,
    ) -> dict[str, Any]:
        """Transaction summaries, most recently updated first."""
        items, total = await lineage.list_transactions(
            limit=_int_param("limit", limit, 50, low=1, high=_MAX_LIMIT),
            offset=_int_param("offset", offset, 0, low=0, high=2**31 - 1),
            state=_choice("state", state, TRANSACTION_STATES),
            q=_text(q),
        )
        return {"items": items, "total": total}

    @api.get("/transactions/{correlation_id}")
    async def get_transaction(correlation_id: str) -> dict[str, Any]:
        """One transaction with its events in event-time order."""
        found = await lineage.get_transaction(correlation_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no transaction {correlation_id}")
        return found

    @api.get("/dead-letters")
    async def list_dead_letters(
        state: str | None = "open",
        reason: str | None = None,
        step: str | None = None,
        limit: str | None = None,
        offset: str | None = None,
    ) -> dict[str, Any]:
        """Dead letters (open ones by default), most recent failure first."""
        items, total = await lineage.list_dead_letters(
            state=_choice("state", state, DEAD_LETTER_STATES),
            reason=_text(reason),
            step=_text(step),
            limit=_int_param("limit", limit, 100, low=1, high=_MAX_LIMIT),
            offset=_int_param("offset", offset, 0, low=0, high=2**31 - 1),
        )
        return {"items": items, "total": total}

    app.include_router(api, dependencies=read_deps)
    for router in routers:
        app.include_router(router)
    return app
