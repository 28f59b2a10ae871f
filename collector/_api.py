"""The control API: JSON over HTTP, served by the collector (the lineage's one writer).

Reads need a viewer token unless ``require_auth_for_reads`` is false; control actions
live in the routers other packages pass in (webhooks, SLA, replay), each guarding itself
with ``require_role``. The contract is the OpenAPI document (``/openapi.json``, browsable
offline at ``/docs`` and ``/redoc``): every operation declares its response model, the
bearer scheme when it checks a role, and every status it answers. Every error answers RFC
9457 problem details (``application/problem+json``, :class:`collector.Problem`). A role is
checked before the request body is read: 401/403 come before any 400/422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tracing import (
    SYSTEM_NAME_PATTERN,
    NotFoundError,
    Reason,
    StoreError,
    System,
    ValidationError,
    is_system_name,
)

from ._api_docs import IsoDateTime, Limit, Offset, not_found, ok, responses
from ._api_models import DeadLetterPage, Health, Stats, TransactionDetail, TransactionPage
from ._auth import ControlRoute, Role, TokenStore, require_role
from ._dead_letters import DEAD_LETTER_STATES, DeadLetterFilter
from ._lineage import TRANSACTION_STATES, AsyncLineage
from ._metrics import Metrics
from ._problem import PROBLEM_JSON, install_problem_handlers

__all__ = ["DEAD_LETTER_STATES", "create_app"]

REASONS = tuple(r.value for r in Reason)
SYSTEMS = tuple(s.value for s in System)
TransactionStateParam = Annotated[
    str,
    Query(
        description="a transaction state; empty or all: any",
        json_schema_extra={"enum": ["", "all", *TRANSACTION_STATES]},
    ),
]
DeadLetterStatesParam = Annotated[
    str,
    Query(
        description="dead-letter states, comma-separated ("
        + ", ".join(DEAD_LETTER_STATES)
        + "); empty or all: any",
    ),
]
ReasonParam = Annotated[
    str | None, Query(json_schema_extra={"enum": ["", *REASONS]}, description="a failure reason")
]
TargetParam = Annotated[
    str | None,
    Query(
        examples=list(SYSTEMS),
        description="a target system: any system name (the built-in ones or a plug-in's)",
    ),
]
GroupParam = Annotated[
    str | None,
    Query(
        pattern=rf"^(|({'|'.join(REASONS)}):.+)$",
        description="a group of /dead-letter-groups: reason:step",
    ),
]


def _choice(name: str, raw: str | None, allowed: Sequence[str]) -> str | None:
    if raw is None or raw.strip() == "" or raw == "all":
        return None
    if raw not in allowed:
        raise ValidationError(
            f"unknown {name} {raw!r}; expected one of {', '.join(allowed)} or all", field=name
        )
    return raw


def _system(name: str, raw: str | None) -> str | None:
    if raw is None or raw == "all":
        return None
    if not is_system_name(raw):
        raise ValidationError(
            f"{name} {raw!r} is not a system name ({SYSTEM_NAME_PATTERN})", field=name
        )
    return raw


def _text(raw: str | None) -> str | None:
    return raw.strip() or None if raw is not None else None


def _states(raw: str | None) -> tuple[str, ...]:
    """``open,replaying`` → both; empty or ``all`` → any (an empty tuple)."""
    if raw is None or raw.strip() in ("", "all"):
        return ()
    return tuple(
        _choice("state", part.strip(), DEAD_LETTER_STATES) or "" for part in raw.split(",")
    )


def _group(raw: str | None) -> tuple[str, str] | None:
    if not raw:
        return None
    reason, _, step = raw.partition(":")
    return reason, step


def _routes(routes: Sequence[Any]) -> list[APIRoute]:
    """Every API route, also inside included routers (FastAPI keeps those apart)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None and hasattr(inner, "routes"):
            found += _routes(inner.routes)
    return found


def _allowed(app: FastAPI, path: str) -> list[str]:
    """Every method some route of ``app`` takes at ``path``."""
    methods: set[str] = set()
    for route in _routes(app.routes):
        if route.path_regex.match(path):
            methods |= set(route.methods or ())
    return sorted(methods)


def _document(app: FastAPI) -> None:
    """Every API route: the error statuses it can answer, documented as problems."""
    for route in _routes(app.routes):
        extra: list[int] = []
        role = route.required_role if isinstance(route, ControlRoute) else None
        if role is not None:
            extra.append(401)
            if role > Role.VIEWER:
                extra.append(403)
        if route.body_field is not None:
            extra.append(400)
        params = (
            route.dependant.query_params
            or route.dependant.path_params
            or route.body_field is not None
            or any(d.query_params or d.path_params for d in route.dependant.dependencies)
        )
        if params:
            extra.append(422)
        if route.path.startswith("/api/"):
            extra.append(503)
        for status, spec in responses(*extra).items():
            route.responses.setdefault(status, spec)


def _problem_media_type(schema: dict[str, Any]) -> None:
    """Error answers are ``application/problem+json`` in the document as on the wire."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if str(status)[:1] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")


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
    # Swagger UI and ReDoc from files shipped in the package: the docs work offline.
    app = FastAPIOffline(title=title)
    app.state.tokens = tokens
    app.state.lineage = lineage
    app.state.metrics = metrics
    # Reads are the viewer role: they need a token unless ``require_auth_for_reads`` is
    # false (the runtime may also set it on ``app.state`` later); an unknown token is
    # refused even for reads.
    app.state.require_auth_for_reads = require_auth_for_reads
    viewer = [Depends(require_role(Role.VIEWER))]
    api = APIRouter(
        prefix="/api/v1", tags=["lineage"], route_class=ControlRoute, dependencies=viewer
    )
    install_problem_handlers(app, allowed=lambda path: _allowed(app, path))

    @app.get("/healthz", tags=["operations"], response_model=None, responses=ok(Health))
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

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of the collector's registry."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @api.get("/stats", response_model=None, responses=ok(Stats))
    async def stats() -> dict[str, Any]:
        """Totals for the overview page."""
        result = await lineage.stats()
        result["bus_backlog"] = metrics.backlog()
        return result

    @api.get("/transactions", response_model=None, responses=ok(TransactionPage))
    async def list_transactions(
        limit: Limit = 50,
        offset: Offset = 0,
        state: TransactionStateParam = "",
        q: str | None = None,
    ) -> dict[str, Any]:
        """Transaction summaries, most recently updated first."""
        items, total = await lineage.list_transactions(
            limit=limit,
            offset=offset,
            state=_choice("state", state, TRANSACTION_STATES),
            q=_text(q),
        )
        return {"items": items, "total": total}

    @api.get(
        "/transactions/{correlation_id}",
        response_model=None,
        responses={**ok(TransactionDetail), **not_found()},
    )
    async def get_transaction(correlation_id: str) -> dict[str, Any]:
        """One transaction with its events in event-time order."""
        found = await lineage.get_transaction(correlation_id)
        if found is None:
            raise NotFoundError(f"no transaction {correlation_id}")
        return found

    @api.get("/dead-letters", response_model=None, responses=ok(DeadLetterPage))
    async def list_dead_letters(
        request: Request,
        state: DeadLetterStatesParam = "open",
        reason: ReasonParam = None,
        target: TargetParam = None,
        step: str | None = None,
        correlation_id: str | None = None,
        group: GroupParam = None,
        since: IsoDateTime | None = None,
        until: IsoDateTime | None = None,
        sla_rule: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Dead letters (open ones by default), most recent failure first: the one list.

        Filters combine with AND. ``next_cursor`` continues after this page (pass it
        as ``cursor``); ``total`` counts every match.
        """
        steps = None
        if rule := _text(sla_rule):
            known: Mapping[str, Collection[str]] = getattr(request.app.state, "rule_steps", {})
            if rule not in known:
                raise ValidationError(f"no SLA rule {rule!r} is known", field="sla_rule")
            steps = frozenset(known[rule])
        page = await lineage.dead_letter_page(
            DeadLetterFilter(
                states=_states(state),
                reason=_choice("reason", _text(reason), REASONS),
                target=_system("target", _text(target)),
                step=_text(step),
                correlation_id=_text(correlation_id),
                group=_group(group),
                since=since,
                until=until,
                steps=steps,
            ),
            limit=limit,
            offset=offset,
            cursor=_text(cursor),
        )
        return {"items": page.items, "total": page.total, "next_cursor": page.next_cursor}

    # The list was also served here by replay before it became the one above.
    api.add_api_route(
        "/dead-letters/search",
        list_dead_letters,
        methods=["GET"],
        response_model=None,
        responses=ok(DeadLetterPage),
        deprecated=True,
        summary="List Dead Letters (deprecated alias of /api/v1/dead-letters)",
    )

    app.include_router(api)
    for router in routers:
        app.include_router(router)
    _document(app)
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = plain_openapi()
        _problem_media_type(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
