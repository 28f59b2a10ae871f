"""The inbox watcher: imports every statement file dropped into the inbox folder.

A real deployment mounts its bank or SFTP drop at the inbox. A file is taken once
it has not changed for ``settle_seconds`` (a writer still copying it is left
alone); names starting with ``.`` are skipped, so a writer may write ``.name``
and rename it. Imported and duplicate files move to ``done/``, refused ones to
``rejected/``, each prefixed with its batch ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from tracing import InterlockError

from ._importer import Importer
from ._models import Batch

__all__ = ["InboxWatcher"]

log = logging.getLogger("interlock.adapters.statements")


class InboxWatcher:
    """A component (``start``/``stop``) polling one folder; ``scan()`` runs one pass."""

    def __init__(
        self,
        importer: Importer,
        inbox: Path,
        *,
        poll_seconds: float = 5.0,
        settle_seconds: float = 2.0,
    ) -> None:
        self.inbox = inbox
        self.done = inbox / "done"
        self.rejected = inbox / "rejected"
        self._importer = importer
        self._poll = poll_seconds
        self._settle = settle_seconds
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        for folder in (self.inbox, self.done, self.rejected):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="statements inbox")
            self._task.add_done_callback(_report_death)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _ready(self) -> list[Path]:
        now = time.time()
        files = []
        for path in self.inbox.iterdir():
            if path.name.startswith(".") or not path.is_file():
                continue
            if now - path.stat().st_mtime >= self._settle:
                files.append(path)
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    async def scan(self) -> list[Batch]:
        """Import every settled file now; the batches, in the order taken."""
        async with self._lock:
            batches = []
            for path in await asyncio.to_thread(self._ready):
                batches.append(
                    await self._importer.import_path(path, done=self.done, rejected=self.rejected)
                )
            return batches

    async def _run(self) -> None:
        while True:
            try:
                await self.scan()
            except InterlockError as exc:
                # Retriable (the ERP is down): the file stays in the inbox for the next pass.
                log.warning("statement inbox scan stopped: %s", exc.message)
            except OSError as exc:
                # The drop is a mounted folder: it may vanish for a while, or a file with it.
                log.warning("statement inbox %s unreadable: %s", self.inbox, exc)
            await asyncio.sleep(self._poll)


def _report_death(task: asyncio.Task[None]) -> None:
    """A watcher that died of a bug says so, instead of going quiet."""
    if not task.cancelled() and task.exception() is not None:
        log.error("statement inbox watcher stopped", exc_info=task.exception())
