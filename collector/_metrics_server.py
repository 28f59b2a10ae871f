"""``/metrics`` and ``/healthz`` for a process without the control API (a standalone
collector): a small Starlette app on uvicorn, inside the process's event loop.

``/healthz`` answers 200 ``{"status": "ok", "checks": {...}}`` when every check is
``"ok"``, otherwise 503 with ``"status": "unhealthy"``, so a supervisor or a
Kubernetes probe can act on it without parsing.

>>> server = MetricsServer(registry, checks, port=9464)   # doctest: +SKIP
>>> await server.start(); ...; await server.stop()         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["MetricsServer"]

#: Named checks, each ``"ok"`` or a reason.
Checks = Callable[[], Awaitable[dict[str, str]]]


class _Server(uvicorn.Server):
    # Signals belong to the process (it stops its collector first, then this).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsServer:
    """Serves ``registry`` and ``checks`` on ``host:port``; ``start``/``stop`` safe twice."""

    def __init__(
        self,
        registry: CollectorRegistry,
        checks: Checks,
        *,
        host: str = "127.0.0.1",
        port: int,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"not a TCP port: {port}")
        self.registry = registry
        self.host = host
        self.port = port
        self._checks = checks
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> Starlette:
        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        async def healthz(_: Request) -> JSONResponse:
            try:
                checks = await self._checks()
            # A failing check is a finding for the report, not a 500.
            except Exception as exc:
                checks = {"health": f"error: {type(exc).__name__}: {exc}"}
            ok = all(value == "ok" for value in checks.values())
            return JSONResponse(
                {"status": "ok" if ok else "unhealthy", "checks": checks},
                status_code=200 if ok else 503,
            )

        return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])

    async def start(self) -> None:
        """Listen; returns once the port is bound (raises if it cannot be)."""
        if self._server is not None:
            return
        config = uvicorn.Config(
            self.app(),
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = server = _Server(config)
        self._task = task = asyncio.create_task(server.serve(), name="metrics-server")
        while not server.started:
            if task.done():
                self._server = self._task = None
                task.result()  # raises what stopped it (port in use)
                raise OSError(f"the metrics server could not listen on {self.url}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
