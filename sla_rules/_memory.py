"""A small :class:`LineageAccess` over one DuckDB connection, for tests and benchmarks.

Reads and writes run one at a time on a dedicated thread (DuckDB connections are
not safe to share across threads); ``write`` wraps ``fn`` in a transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import duckdb

from collector.lineage import DDL

__all__ = ["DuckDBLineage"]

T = TypeVar("T")


class DuckDBLineage:
    """``DuckDBLineage()`` is an empty ``:memory:`` lineage with the collector schema."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.con = con if con is not None else duckdb.connect(":memory:")
        self.con.execute(DDL)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineage")

    def _write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        self.con.execute("BEGIN TRANSACTION")
        try:
            result = fn(self.con)
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")
        return result

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, self.con)

    async def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._write, fn)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.con.close()
