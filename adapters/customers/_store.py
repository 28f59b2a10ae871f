"""The customer master's tables, kept in the lineage's DuckDB file beside the events.

PII never lands here in clear: a field the matrix marks ``pii`` is kept as its masked
form and its fingerprint only (``value`` is NULL), and is re-read from its system
when a change carries it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

__all__ = [
    "DDL",
    "baseline",
    "change",
    "changes",
    "customer",
    "customers",
    "decisions",
    "insert_change",
    "put_baseline",
    "put_customer",
    "put_decision",
    "put_stage",
    "stages",
    "update_change",
]

DDL = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id  VARCHAR PRIMARY KEY,
    name         VARCHAR,
    record       JSON NOT NULL,      -- the golden record, field -> shown (masked) value
    xref         JSON NOT NULL,      -- the customer's ID in every system
    synced_at    TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_baselines (
    customer_id  VARCHAR NOT NULL,
    system       VARCHAR NOT NULL,
    field        VARCHAR NOT NULL,
    fingerprint  VARCHAR,            -- the value's digest at the last sync
    PRIMARY KEY (customer_id, system, field)
);
CREATE TABLE IF NOT EXISTS customer_changes (
    change_id      VARCHAR PRIMARY KEY,
    customer_id    VARCHAR NOT NULL,
    field          VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,  -- change_request | propagation | stewardship
    state          VARCHAR NOT NULL,  -- pending | propagating | done | halted | rejected | resolved
    source         VARCHAR,           -- the system whose value wins
    fingerprint    VARCHAR,           -- of the winning value, as detected
    shown          VARCHAR,           -- the winning value, masked when PII
    value          VARCHAR,           -- the winning value in clear (NULL for PII)
    targets        JSON NOT NULL,     -- systems to write, in propagation order
    values_seen    JSON NOT NULL,     -- system -> shown value, at detection
    approvals      JSON NOT NULL,     -- [{"by", "at"}]
    correlation_id VARCHAR NOT NULL,
    detail         VARCHAR,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_stages (
    change_id  VARCHAR NOT NULL,
    position   INTEGER NOT NULL,
    system     VARCHAR NOT NULL,
    status     VARCHAR NOT NULL,      -- pending | ok | failed
    event_id   VARCHAR,
    error      VARCHAR,
    stage_at   TIMESTAMPTZ,
    PRIMARY KEY (change_id, position)
);
CREATE TABLE IF NOT EXISTS customer_decisions (
    customer_id  VARCHAR NOT NULL,
    field        VARCHAR NOT NULL,
    fingerprint  VARCHAR,
    value        VARCHAR,             -- NULL for PII
    source       VARCHAR NOT NULL,    -- the system whose value the steward chose
    decided_by   VARCHAR NOT NULL,
    decided_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, field)
);
"""

_CHANGE_COLUMNS = (
    "change_id", "customer_id", "field", "kind", "state", "source", "fingerprint", "shown",
    "value", "targets", "values_seen", "approvals", "correlation_id", "detail", "created_at",
    "updated_at",
)  # fmt: skip
_JSON = {"targets", "values_seen", "approvals", "record", "xref"}


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    out = []
    for row in cur.fetchall():
        item = dict(zip(names, row, strict=True))
        for key in _JSON & item.keys():
            if isinstance(item[key], str):
                item[key] = json.loads(item[key])
        out.append(item)
    return out


def put_customer(
    conn: duckdb.DuckDBPyConnection,
    customer_id: str,
    name: str | None,
    record: dict[str, Any],
    xref: dict[str, Any],
    at: datetime,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?, ?)",
        [customer_id, name, json.dumps(record), json.dumps(xref), at],
    )


def customers(
    conn: duckdb.DuckDBPyConnection, *, limit: int, offset: int, q: str | None
) -> tuple[list[dict[str, Any]], int]:
    where, params = ("", []) if not q else ("WHERE name ILIKE ? OR customer_id = ?", [f"%{q}%", q])
    total = conn.execute(f"SELECT count(*) FROM customers {where}", params).fetchone()
    cur = conn.execute(
        f"SELECT * FROM customers {where} ORDER BY name, customer_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return _rows(cur), int(total[0]) if total else 0


def customer(conn: duckdb.DuckDBPyConnection, customer_id: str) -> dict[str, Any] | None:
    rows = _rows(conn.execute("SELECT * FROM customers WHERE customer_id = ?", [customer_id]))
    return rows[0] if rows else None


def baseline(conn: duckdb.DuckDBPyConnection, customer_id: str) -> dict[str, dict[str, Any]]:
    """``{field: {system: fingerprint}}`` at the last sync."""
    out: dict[str, dict[str, Any]] = {}
    for system, field, fp in conn.execute(
        "SELECT system, field, fingerprint FROM customer_baselines WHERE customer_id = ?",
        [customer_id],
    ).fetchall():
        out.setdefault(field, {})[system] = fp
    return out


def put_baseline(
    conn: duckdb.DuckDBPyConnection, customer_id: str, rows: Sequence[tuple[str, str, str | None]]
) -> None:
    for system, field, fp in rows:
        conn.execute(
            "INSERT OR REPLACE INTO customer_baselines VALUES (?, ?, ?, ?)",
            [customer_id, system, field, fp],
        )


def insert_change(conn: duckdb.DuckDBPyConnection, *, item: dict[str, Any]) -> None:
    values = [json.dumps(item[c]) if c in _JSON else item.get(c) for c in _CHANGE_COLUMNS]
    conn.execute(
        f"INSERT INTO customer_changes ({', '.join(_CHANGE_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _CHANGE_COLUMNS)})",
        values,
    )


def update_change(conn: duckdb.DuckDBPyConnection, change_id: str, **fields: Any) -> None:
    names = sorted(fields)
    conn.execute(
        f"UPDATE customer_changes SET {', '.join(f'{n} = ?' for n in names)} WHERE change_id = ?",
        [json.dumps(fields[n]) if n in _JSON else fields[n] for n in names] + [change_id],
    )


def change(conn: duckdb.DuckDBPyConnection, change_id: str) -> dict[str, Any] | None:
    rows = _rows(conn.execute("SELECT * FROM customer_changes WHERE change_id = ?", [change_id]))
    return rows[0] if rows else None


def changes(
    conn: duckdb.DuckDBPyConnection,
    *,
    kinds: Sequence[str] = (),
    state: str | None = None,
    customer_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    clauses, params = [], []
    if kinds:
        clauses.append(f"kind IN ({', '.join('?' for _ in kinds)})")
        params += list(kinds)
    if state:
        clauses.append("state = ?")
        params.append(state)
    if customer_id:
        clauses.append("customer_id = ?")
        params.append(customer_id)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    total = conn.execute(f"SELECT count(*) FROM customer_changes {where}", params).fetchone()
    cur = conn.execute(
        f"SELECT * FROM customer_changes {where} ORDER BY created_at DESC, change_id "
        "LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return _rows(cur), int(total[0]) if total else 0


def put_stage(
    conn: duckdb.DuckDBPyConnection,
    change_id: str,
    position: int,
    system: str,
    status: str,
    *,
    event_id: str | None = None,
    error: str | None = None,
    at: datetime | None = None,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO customer_stages VALUES (?, ?, ?, ?, ?, ?, ?)",
        [change_id, position, system, status, event_id, error, at],
    )


def stages(conn: duckdb.DuckDBPyConnection, change_id: str) -> list[dict[str, Any]]:
    return _rows(
        conn.execute(
            "SELECT position, system, status, event_id, error, stage_at AS at FROM customer_stages "
            "WHERE change_id = ? ORDER BY position",
            [change_id],
        )
    )


def decisions(conn: duckdb.DuckDBPyConnection, customer_id: str) -> dict[str, dict[str, Any]]:
    rows = _rows(
        conn.execute("SELECT * FROM customer_decisions WHERE customer_id = ?", [customer_id])
    )
    return {r["field"]: r for r in rows}


def put_decision(
    conn: duckdb.DuckDBPyConnection,
    customer_id: str,
    field: str,
    *,
    fingerprint: str | None,
    value: str | None,
    source: str,
    by: str,
    at: datetime,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO customer_decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
        [customer_id, field, fingerprint, value, source, by, at],
    )
