"""Per-key asyncio locks shared by every adapter on one event loop.

Two ``TrytonAdapter`` objects in one process that create the same sale must not
both pass the search-before-create check, so the locks live here, keyed by
(server, database, kind, natural key) and by event loop, not on the adapter.
A lock is dropped as soon as nobody holds or waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Hashable

__all__ = ["keyed_lock"]

_Entry = tuple[asyncio.Lock, list[int]]  # the lock and its user count (a mutable cell)
_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Entry]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def keyed_lock(key: Hashable) -> AsyncIterator[None]:
    """Hold the lock for ``key`` on the running event loop."""
    locks = _REGISTRY.setdefault(asyncio.get_running_loop(), {})
    entry = locks.get(key)
    if entry is None:
        entry = (asyncio.Lock(), [0])
        locks[key] = entry
    lock, users = entry
    users[0] += 1
    try:
        async with lock:
            yield
    finally:
        users[0] -= 1
        if users[0] == 0:
            locks.pop(key, None)
