"""The real control API with replay (the one builder, the shipped plug-ins, an
in-memory lineage), served from a thread with its own event loop (for the CLI and
dashboard tests, which talk HTTP to it)."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

from _hosts import serve

from collector import Role
from collector.host import Interlock, InterlockThread
from collector.lineage import AsyncLineage
from replay import ReplayService
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
        self.url = ""
        self._workdir = tempfile.TemporaryDirectory(prefix="replay-api-")
        self._thread: InterlockThread | None = None

    @property
    def service(self) -> ReplayService:
        assert self._thread is not None and self._thread.interlock.host is not None
        service: ReplayService = self._thread.interlock.host.shared("replay.service", _missing)
        return service

    @property
    def lineage(self) -> AsyncLineage | None:
        return self._thread.interlock.lineage if self._thread is not None else None

    def start(self, events: Iterable[Event] = ()) -> ReplayApiServer:
        self._thread = serve(
            list(events),
            TOKENS,
            workdir=Path(self._workdir.name),
            replay={"outcome_timeout": 2.0},
            sla=False,
        )
        self.url = self._thread.url
        return self

    def call(self, fn: Callable[[ReplayService], Awaitable[T]], timeout: float = 30) -> T:
        assert self._thread is not None
        service = self.service

        async def run(_: Interlock) -> T:
            return await fn(service)

        return self._thread.call(run, timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        self._workdir.cleanup()


def _missing() -> ReplayService:
    raise AssertionError("the replay plug-in is not installed")
