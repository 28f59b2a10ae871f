"""Parameter binding for DuckDB without its slow path for aware datetimes.

DuckDB's Python client imports pandas the first time an aware ``datetime`` is bound
as a parameter (seconds of start-up, paid inside the first evaluation). Timestamps
are bound as epoch seconds instead and turned back into ``TIMESTAMPTZ`` in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

__all__ = ["execute"]


def bind(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """Rewrite each ``?`` whose value is a datetime as ``to_timestamp(?)``."""
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} parameters")
    out = [parts[0]]
    values: list[Any] = []
    for value, rest in zip(params, parts[1:], strict=True):
        if isinstance(value, datetime):
            out.append("to_timestamp(?)")
            values.append(value.timestamp())
        else:
            out.append("?")
            values.append(value)
        out.append(rest)
    return "".join(out), values


def execute(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()
) -> duckdb.DuckDBPyConnection:
    """``con.execute(sql, params)`` with datetimes bound as epoch seconds."""
    return con.execute(*bind(sql, params))
