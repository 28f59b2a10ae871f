"""Errors become HTTP answers in one place (``collector._problem``), from the error class.

Routers raise an error of the tree in ``tracing._errors``; the problem handlers turn its
class into the status, the RFC 9457 body and the headers (``WWW-Authenticate`` on a 401,
``Retry-After`` on a 429/503). No production module builds an error answer by hand.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

import tracing
from adapters.billing import RejectReason, stripe_webhook_router
from collector import Principal, Role, TokenStore
from collector.api import (
    PROBLEM_JSON,
    Metrics,
    create_app,
    install_problem_handlers,
    require_role,
)
from collector.lineage import AsyncLineage, LineageStore
from tracing import (
    BusError,
    ForbiddenError,
    InterlockError,
    NotFoundError,
    StoreError,
    UnauthorizedError,
)

ROOT = Path(__file__).resolve().parents[2]
#: The production packages whose routers answer HTTP.
PACKAGES = ("collector", "replay", "sla_rules", "adapters")
#: Not production: the sandboxes imitate other vendors' APIs, error bodies included.
EXCLUDED = ("adapters/sandbox/",)
#: The one module that turns errors into answers.
THE_PLACE = "collector/_problem.py"
#: (module, function) that may answer an error status by hand, and why.
REPORTS = {
    # The metrics port's probe: 503 with {"status", "checks"} is its health report for
    # a load balancer, not an error of the control API (which has its own /healthz).
    ("collector/_metrics_server.py", "healthz"),
}
_HTTP_EXCEPTIONS = {"HTTPException"}
_JSON_RESPONSES = {"JSONResponse", "ORJSONResponse", "UJSONResponse"}


def _called(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _status_arg(call: ast.Call) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == "status_code":
            return kw.value
    return call.args[1] if len(call.args) > 1 else None


def _is_error_status(value: ast.expr | None, *, unknown: bool) -> bool:
    """Whether ``value`` (a ``status_code``) may be 4xx/5xx; ``unknown`` for a computed one."""
    if value is None:
        return False  # the default, 200
    if isinstance(value, ast.Constant):
        return isinstance(value.value, int) and value.value >= 400
    return unknown


def hand_made_answers(source: str, module: str) -> list[str]:
    """Every place in ``source`` that raises ``HTTPException`` or builds an error response."""
    tree = ast.parse(source)
    # Names the module gives HTTPException and JSONResponse (``import ... as ...`` too).
    http_names, json_names = set(_HTTP_EXCEPTIONS), set(_JSON_RESPONSES)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in _HTTP_EXCEPTIONS:
                    http_names.add(alias.asname or alias.name)
                if alias.name in _JSON_RESPONSES:
                    json_names.add(alias.asname or alias.name)
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        where = f"{module}:{getattr(node, 'lineno', '?')} ({function})"
        if (module, function) not in REPORTS:
            # ``raise HTTPException``; a call, ``raise HTTPException(...)``, is found below.
            raised = node.exc if isinstance(node, ast.Raise) else None
            if raised is not None and _called(raised) in http_names:
                found.append(f"{where}: raises HTTPException")
            if isinstance(node, ast.Call):
                name = _called(node.func)
                status = _status_arg(node)
                response = name in json_names or (name or "").endswith("Response")
                if name in http_names:
                    found.append(f"{where}: builds an HTTPException")
                # A computed status of a JSON response may be an error; of another, a file.
                elif response and _is_error_status(status, unknown=name in json_names):
                    found.append(f"{where}: builds an error {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return sorted(set(found))


def _production_modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if module != THE_PLACE and not module.startswith(EXCLUDED):
                yield module, path


def test_no_production_module_answers_an_error_by_hand() -> None:
    modules = list(_production_modules())
    assert len(modules) > 50  # the walk found the packages
    found = [hit for module, path in modules for hit in hand_made_answers(path.read_text(), module)]
    assert found == [], "raise an error class of tracing._errors instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from fastapi import HTTPException\ndef f():\n    raise HTTPException(404, 'x')",
        "import fastapi\ndef f():\n    raise fastapi.HTTPException(status_code=422)",
        "from starlette.exceptions import HTTPException as E\ndef f():\n    raise E(401)",
        "from fastapi import HTTPException\ndef f():\n    raise HTTPException",
        "from fastapi.responses import JSONResponse\ndef f():\n"
        "    return JSONResponse({'detail': 'x'}, status_code=404)",
        "from fastapi.responses import JSONResponse as J\ndef f(s):\n    return J({}, s)",
        "from starlette.responses import Response\ndef f():\n    return Response(status_code=503)",
    ],
    ids=["raise", "attribute", "alias", "bare", "json-404", "json-computed", "plain-503"],
)
def test_the_walk_finds_hand_made_answers(source: str) -> None:
    assert hand_made_answers(source, "room/_api.py"), source


def test_the_walk_leaves_success_answers_alone() -> None:
    source = (
        "from fastapi.responses import JSONResponse, Response\n"
        "def f(s):\n"
        "    JSONResponse({'ok': True})\n"
        "    JSONResponse({'ok': True}, status_code=201)\n"
        "    Response(b'', status_code=s)\n"
    )
    assert hand_made_answers(source, "room/_api.py") == []


# -- the error classes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "status"), [(NotFoundError, 404), (UnauthorizedError, 401), (ForbiddenError, 403)]
)
def test_the_new_classes_are_exported_with_their_status_and_say_when_raised(
    cls: type[InterlockError], status: int
) -> None:
    assert cls.__name__ in tracing.__all__ and getattr(tracing, cls.__name__) is cls
    assert issubclass(cls, InterlockError) and cls.http_status == status
    assert cls.__doc__ and "Raised when" in cls.__doc__


class _Coded(InterlockError):
    code = "a_code"


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    store = TokenStore()
    store.add("vera", Role.VIEWER, "view-token")
    app.state.tokens = store

    @app.get("/things/{name}")
    def thing(name: str) -> None:
        raise NotFoundError(f"no thing {name}")

    @app.post("/actions")
    def action(principal: Annotated[Principal, Depends(require_role(Role.OPERATOR))]) -> None:
        return None

    @app.get("/store")
    def store_down() -> None:
        raise StoreError("duckdb: IO Error: could not lock /var/lineage.duckdb")

    @app.get("/bus")
    def bus_down() -> None:
        raise BusError("kafka: broker transport failure")

    @app.get("/coded")
    def coded() -> None:
        raise _Coded("nothing to see")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_not_found_error_is_a_404_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/things/c-1")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no thing c-1",
        "instance": "/things/c-1",
    }


async def test_a_401_carries_www_authenticate_and_a_403_does_not(
    client: httpx.AsyncClient,
) -> None:
    for headers, detail in (
        ({}, "a bearer token is required for this action"),
        ({"Authorization": "Bearer forged"}, "the bearer token is not known"),
    ):
        r = await client.post("/actions", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["detail"] == detail and r.json()["title"] == "Unauthorized"
    r = await client.post("/actions", headers={"Authorization": "Bearer view-token"})
    assert r.status_code == 403
    assert "www-authenticate" not in r.headers
    assert r.json()["detail"] == "role viewer may not do this; it needs operator"


def test_an_unauthorized_error_names_its_challenge() -> None:
    assert UnauthorizedError("x").challenge == "Bearer"
    assert UnauthorizedError("x", challenge='Basic realm="ops"').challenge == 'Basic realm="ops"'


async def test_a_503_carries_retry_after_and_hides_the_engine_text(
    client: httpx.AsyncClient,
) -> None:
    for path, what in (("/store", "lineage store"), ("/bus", "event bus")):
        r = await client.get(path)
        assert r.status_code == 503, path
        assert r.headers["retry-after"] == "5", path
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["detail"] == f"the {what} is unavailable; retry later"
        assert "duckdb" not in r.text and "kafka" not in r.text


async def test_an_error_code_is_the_problem_error_member(client: httpx.AsyncClient) -> None:
    r = await client.get("/coded")
    assert r.status_code == 500
    assert r.json()["error"] == "a_code" and r.json()["detail"] == "nothing to see"


# -- the routers that used to answer by hand ---------------------------------------------


async def test_the_control_api_answers_its_404_and_422_as_problems() -> None:
    lineage = AsyncLineage(LineageStore())
    await lineage.open()
    tokens = TokenStore()
    tokens.add("vera", Role.VIEWER, "view-token")
    app = create_app(lineage=lineage, metrics=Metrics(CollectorRegistry()), tokens=tokens)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer view-token"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as c:
            r = await c.get("/api/v1/transactions/c-1")
            assert (r.status_code, r.headers["content-type"]) == (404, PROBLEM_JSON)
            assert r.json()["detail"] == "no transaction c-1"
            r = await c.get("/api/v1/transactions", params={"state": "nope"})
            assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM_JSON)
            assert r.json()["detail"].startswith("unknown state 'nope'; expected one of ")
    finally:
        await lineage.close()


def _webhook_app(recording: Exception | None) -> FastAPI:
    async def on_event(event: dict[str, object]) -> None:
        return None

    async def on_rejected(code: str, detail: str) -> None:
        if recording is not None:
            raise recording

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(
        stripe_webhook_router(secrets=["whsec_x"], on_event=on_event, on_rejected=on_rejected)
    )
    return app


async def _unsigned_post(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as c:
        return await c.post("/webhooks/stripe", content=b"{}")


async def test_the_stripe_webhook_refusals_are_problems_with_their_code() -> None:
    r = await _unsigned_post(_webhook_app(None))
    assert (r.status_code, r.headers["content-type"]) == (401, PROBLEM_JSON)
    body = r.json()
    assert body["error"] == RejectReason.MISSING_SIGNATURE and body["status"] == 401
    assert body["detail"] and body["instance"] == "/webhooks/stripe"
    # The refusal could not be recorded: 503, so Stripe sends it again.
    r = await _unsigned_post(_webhook_app(BusError("kafka: queue full")))
    assert (r.status_code, r.headers["content-type"]) == (503, PROBLEM_JSON)
    assert r.headers["retry-after"] == "5"
    assert r.json()["error"] == "bus_unavailable" and "kafka" not in r.text
