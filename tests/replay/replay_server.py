"""The collector's real app with the replay router, served by uvicorn on a free
loopback port from a thread with its own event loop (for the CLI and dashboard
tests, which talk HTTP to it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import uvicorn
from prometheus_client import CollectorRegistry

from adapters.sandbox._process import free_port, wait_for_http
from collector._api import create_app
from collector._auth import Role, TokenStore
from collector._bus import EmbeddedBus
from collector._lineage import AsyncLineage, LineageStore
from collector._metrics import Metrics
from replay import ReplayService, replay_router
from tracing import Event

T = TypeVar("T")

#: token -> (name, role)
TOKENS: dict[str, tuple[str, Role]] = {
    "tok-viewer": ("vic", Role.VIEWER),
    "tok-operator": ("olga", Role.OPERATOR),
    "tok-approver": ("anna", Role.APPROVER),
    "tok-approver2": ("arne", Role.APPROVER),
    "tok-admin": ("ada", Role.ADMIN),
}


class ReplayApiServer:
    """Start with ``start(events)``; ``call(fn)`` runs ``fn(service)`` on the server's loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.service: ReplayService | None = None
        self.lineage: AsyncLineage | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, events: Iterable[Event] = ()) -> ReplayApiServer:
        seed = list(events)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main(seed)), daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        wait_for_http(f"{self.url}/healthz", timeout=30)
        return self

    async def _main(self, seed: list[Event]) -> None:
        try:
            self.loop = asyncio.get_running_loop()
            self.lineage = AsyncLineage(LineageStore(":memory:"))
            await self.lineage.open()
            await self.lineage.write_batch(seed)
            bus = EmbeddedBus(partitions=2)
            self.service = ReplayService(self.lineage, bus, probe=None, outcome_timeout=2.0)
            await self.service.start()
            await bus.start()
            tokens = TokenStore()
            for token, (name, role) in TOKENS.items():
                tokens.add(name, role, token)
            app = create_app(
                lineage=self.lineage,
                metrics=Metrics(CollectorRegistry()),
                tokens=tokens,
                routers=[replay_router(self.service)],
            )
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
            self._server = uvicorn.Server(config)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._server.serve()
        finally:
            await self.service.stop()
            await bus.stop()
            await self.lineage.close()

    def call(self, fn: Callable[[ReplayService], Awaitable[T]], timeout: float = 30) -> T:
        assert self.loop is not None and self.service is not None
        service = self.service

        async def run() -> T:
            return await fn(service)

        coro: Coroutine[Any, Any, T] = run()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
