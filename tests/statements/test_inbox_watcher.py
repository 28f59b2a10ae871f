"""The inbox watcher takes settled files only, skips dotfiles, and keeps running."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, cast

from adapters.statements import Importer, InboxWatcher


class _Recorder:
    """Stands in for the importer: records what it was given and moves it to done/."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    async def import_path(self, path: Path, *, done: Path, rejected: Path) -> Any:
        self.taken.append(path.name)
        await asyncio.to_thread(path.rename, done / path.name)
        return path.name


async def test_only_settled_visible_files_are_taken(tmp_path: Path) -> None:
    recorder = _Recorder()
    watcher = InboxWatcher(
        cast(Importer, recorder), tmp_path / "inbox", poll_seconds=3600, settle_seconds=5
    )
    await watcher.start()
    try:
        inbox = watcher.inbox
        (inbox / ".being-written.sta").write_bytes(b":20:x")
        (inbox / "fresh.sta").write_bytes(b":20:x")
        old = inbox / "old.sta"
        old.write_bytes(b":20:x")
        an_hour_ago = time.time() - 3600
        os.utime(old, (an_hour_ago, an_hour_ago))
        assert await watcher.scan() == ["old.sta"]
        assert recorder.taken == ["old.sta"]
        assert (watcher.done / "old.sta").exists()
        assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [
            ".being-written.sta",
            "fresh.sta",
        ]
    finally:
        await watcher.stop()
        await watcher.stop()  # safe twice


async def test_the_background_scan_imports_what_is_dropped(tmp_path: Path) -> None:
    recorder = _Recorder()
    watcher = InboxWatcher(
        cast(Importer, recorder), tmp_path / "inbox", poll_seconds=0.02, settle_seconds=0
    )
    await watcher.start()
    try:
        (watcher.inbox / "a.xml").write_bytes(b"<x/>")
        for _ in range(200):
            if recorder.taken:
                break
            await asyncio.sleep(0.02)
        assert recorder.taken == ["a.xml"]
    finally:
        await watcher.stop()
