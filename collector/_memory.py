"""Handing freed memory back to the operating system between batches.

glibc keeps what Python, DuckDB and aiokafka free in its arenas (one per thread
that allocates), and Arrow's pool keeps its own; the collector's resident memory
then stays at its highest point. ``release_memory`` returns what is free now.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import pyarrow as pa

__all__ = ["release_memory"]


def _find_trim() -> Callable[[int], int] | None:
    # malloc_trim is glibc's; elsewhere (musl, macOS) there is nothing to call.
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _find_trim()


def release_memory() -> None:
    """Return free memory of glibc's arenas and Arrow's pool to the OS (~2 ms)."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
