"""The one builder of a running Interlock: the host, its core and its plug-ins.

``interlock up``, the end-to-end tests, the dashboard tests and the benches all
compose Interlock here; they differ only in the plug-ins they pass (``None``: the
ones installed under the ``interlock.plugins`` entry-point group)::

    interlock = Interlock(load_settings(), demo=False)
    info = await interlock.start()      # control API on info.api_url
    ...
    await interlock.stop()              # everything stopped, the lineage closed

The builder opens the lineage, makes the bus and the collector, starts nothing
itself: plug-ins install into the :class:`~collector.Host`, the control API is
added with their routers, and the host starts every component in stage order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import uvicorn

from tracing import setup_tracing

from ._api import create_app
from ._bus import Bus, EmbeddedBus
from ._bus_factory import make_bus
from ._config import Settings
from ._contracts import Plugin, Stage, component
from ._explore import explore_router
from ._host import Host
from ._ingest import Collector
from ._lineage import AsyncLineage, LineageStore
from ._metrics import Metrics
from ._plugins import discover, ordered
from ._process import ManagedProcess, free_port
from ._roles import Role, TokenStore, load_tokens
from ._schemas_api import schemas_router

__all__ = ["Interlock", "InterlockInfo", "InterlockThread", "dashboard_command"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def dashboard_command(app: Path, port: int) -> list[str]:
    """The command that serves the dashboard ``app`` on ``port``.

    ``client.toolbarMode minimal`` hides Streamlit's developer toolbar, whose Deploy
    button would otherwise show on every page.
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


@dataclass
class InterlockInfo:
    api_url: str
    dashboard_url: str | None = None
    demo_tokens: dict[str, str] = field(default_factory=dict)
    tokens_file: Path | None = None


class Interlock:
    """Interlock assembled from :class:`Settings` and plug-ins."""

    def __init__(
        self,
        settings: Settings,
        plugins: Sequence[Plugin] | None = None,
        *,
        demo: bool | None = None,
        api_port: int | None = None,
        tokens: TokenStore | None = None,
    ) -> None:
        self.settings = settings
        self.plugins = ordered(discover() if plugins is None else plugins)
        self.demo = settings.demo.enabled if demo is None else demo
        self._api_port = api_port
        self._extra_tokens = tokens
        self.info: InterlockInfo | None = None
        self.host: Host | None = None
        self.bus: Bus | None = None
        self.lineage: AsyncLineage | None = None
        self.collector: Collector | None = None
        self.metrics: Metrics | None = None
        self.app: object | None = None
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._dashboard: ManagedProcess | None = None
        self._started = False

    # -- assembly ---------------------------------------------------------------------

    def _tokens(self) -> tuple[TokenStore, dict[str, str]]:
        s = self.settings
        store = load_tokens(s.tokens, env=os.environ, file=s.api.tokens_file)
        if self._extra_tokens is not None:
            store.merge(self._extra_tokens)
        demo_tokens: dict[str, str] = {}
        if self.demo:
            # Fresh tokens per demo run, one per role; never printed, written to a 0600 file.
            for role in Role:
                token = secrets.token_urlsafe(24)
                name = f"demo-{role.name.lower()}"
                store.add(name, role, token)
                demo_tokens[name] = token
            # A second approver, so four-eyes approval can be tried in the demo.
            token = secrets.token_urlsafe(24)
            store.add("demo-approver-2", Role.APPROVER, token)
            demo_tokens["demo-approver-2"] = token
        return store, demo_tokens

    async def start(self) -> InterlockInfo:
        """Build the host, install the plug-ins and start everything; on a failure
        stop what started and raise."""
        if self._started:
            assert self.info is not None
            return self.info
        self._started = True
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> InterlockInfo:
        s = self.settings
        setup_tracing("interlock")
        port = self._api_port or s.api.port or free_port()
        api_url = f"http://{s.api.host}:{port}"
        tokens, demo_tokens = self._tokens()
        self.metrics = metrics = Metrics()
        if s.lineage.path != ":memory:":
            Path(s.lineage.path).parent.mkdir(parents=True, exist_ok=True)
        store = LineageStore(
            s.lineage.path, memory_limit=s.lineage.memory_limit, threads=s.lineage.threads
        )
        store.open()
        self.lineage = lineage = AsyncLineage(store)
        self.bus = bus = make_bus(s.bus, journal=_journal(s), registry=metrics.registry)
        if not isinstance(bus, EmbeddedBus):
            # Kafka: topics and the producer first; batch consumers join a running bus.
            await bus.start()
        self.collector = collector = Collector(
            lineage,
            metrics,
            batch_size=s.lineage.batch_size,
            flush_interval=s.lineage.flush_interval,
        )
        collector.attach(bus)
        host = self.host = Host(
            s,
            bus=bus,
            api_url=api_url,
            lineage=lineage,
            metrics=metrics,
            tokens=tokens,
            demo=self.demo,
        )
        host.add_component(component("bus", start=self._start_bus, stop=self._stop_bus), Stage.BUS)
        host.add_health("bus", _sync(collector.bus_health))
        host.add_health("ingest", _sync(collector.health))

        for plugin in self.plugins:
            await plugin.install(host)
        # The demo plug-in may have pointed the systems' sections at its landscape.
        self.settings = s = host.settings
        # The lineage reads what a transaction waits for from the installed flows.
        store.set_flows([spec.steps for spec in host.flow_specs])
        if isinstance(bus, EmbeddedBus):
            metrics.set_backlog_source(bus.backlog)

        host.add_router(explore_router(lineage, systems=host.systems))
        host.add_router(schemas_router(host.schemas))
        self.app = create_app(
            lineage=lineage,
            metrics=metrics,
            tokens=tokens,
            routers=host.routers,
            health=host.health,
            require_auth_for_reads=s.api.require_auth_for_reads,
        )
        # The dead-letter list selects by SLA rule from the steps the SLA plug-in named.
        self.app.state.rule_steps = host.rule_steps
        config = uvicorn.Config(
            self.app,
            host=s.api.host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = _EmbeddedServer(config)
        host.add_component(
            component("control API", start=self._serve, stop=self._stop_serving), Stage.API
        )
        await host.start()

        self.info = InterlockInfo(api_url=api_url, demo_tokens=demo_tokens)
        if demo_tokens:
            path = Path(s.demo.workdir) / "tokens.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{name}\t{tok}\n" for name, tok in demo_tokens.items()))
            path.chmod(0o600)
            self.info.tokens_file = path
        return self.info

    # -- the core's components ---------------------------------------------------------

    async def _start_bus(self) -> None:
        assert self.bus is not None and self.collector is not None
        await self.bus.start()
        await self.collector.start()

    async def _stop_bus(self) -> None:
        bus, collector = self.bus, self.collector
        if bus is not None:
            if isinstance(bus, EmbeddedBus) and collector is not None:
                # Store what is in flight while the journal can still be told.
                await bus.drain()
                await collector.flush()
            await bus.stop()
        if collector is not None:
            await collector.stop()

    async def _serve(self) -> None:
        assert self._server is not None
        self._server_task = asyncio.create_task(self._server.serve(), name="control-api")
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise RuntimeError("the control API could not start")
            await asyncio.sleep(0.02)

    async def _stop_serving(self) -> None:
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            await asyncio.gather(self._server_task, return_exceptions=True)
        self._server_task = None

    # -- the dashboard, and stopping ----------------------------------------------------

    def start_dashboard(self, port: int | None = None, *, token: str | None = None) -> str:
        """Start the Streamlit dashboard as a child process; returns its URL.

        ``token`` is the bearer token the dashboard reads with until someone signs in;
        the demo landscape hands it its ``demo-viewer`` token, so its pages show data
        although reads need a token.
        """
        assert self.info is not None
        port = port or self.settings.dashboard.port or free_port()
        token = token or self.info.demo_tokens.get("demo-viewer")
        app = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
        self._dashboard = ManagedProcess(
            "dashboard",
            dashboard_command(app, port),
            ready_url=f"http://127.0.0.1:{port}/_stcore/health",
            env={
                "INTERLOCK_API_URL": self.info.api_url,
                **({"INTERLOCK_API_TOKEN": token} if token else {}),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(app.parent.parent), os.environ.get("PYTHONPATH")])
                ),
            },
            ready_timeout=60,
        ).start()
        self.info.dashboard_url = f"http://127.0.0.1:{port}"
        return self.info.dashboard_url

    async def stop(self) -> None:
        """Stop everything in the reverse order of start, close the lineage; safe twice."""
        if self._dashboard is not None:
            self._dashboard.stop()
            self._dashboard = None
        if self.host is not None:
            await self.host.stop()
        elif self.bus is not None:
            await self.bus.stop()
        if self.lineage is not None:
            await self.lineage.close()
            self.lineage = None
        self.bus = None
        self.collector = None
        self._server = None
        self._started = False


class InterlockThread:
    """An :class:`Interlock` on its own event loop in a thread, for code that talks
    HTTP to it synchronously (the CLI, dashboard and browser tests, the benches).

    ``call(fn)`` runs ``fn(interlock)`` on that loop and returns its result.
    """

    def __init__(self, interlock: Interlock, *, timeout: float = 120) -> None:
        self.interlock = interlock
        self.timeout = timeout
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> InterlockThread:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout):
            raise TimeoutError(f"Interlock did not start within {self.timeout} s")
        if self._error is not None:
            raise self._error
        return self

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            info = await self.interlock.start()
            self.url = info.api_url
        except BaseException as exc:  # reported to start(), not swallowed
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.interlock.stop()

    def call(self, fn: Callable[[Interlock], Awaitable[T]], timeout: float = 30) -> T:
        assert self.loop is not None

        async def run() -> T:
            return await fn(self.interlock)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    def __enter__(self) -> InterlockThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sync(check: Callable[[], str]) -> Callable[[], Awaitable[str]]:
    """A health check from a plain function returning its status text."""

    async def run() -> str:
        return check()

    return run


def _journal(s: Settings) -> Path | None:
    """The embedded bus's journal, beside the lineage file (none for an in-memory one)."""
    if not s.bus.journal or s.lineage.path == ":memory:":
        return None
    return Path(s.lineage.path).resolve().parent / "journal"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: signals belong to ``interlock up``, which stops
    everything in order, so the server must not take SIGINT/SIGTERM for itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
