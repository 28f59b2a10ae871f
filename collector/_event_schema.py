"""The lineage's ``events`` table and its Arrow batch, derived from the envelope's layout.

Nothing here lists the envelope's fields: the columns are the layout's
(:class:`tracing.EnvelopeLayout`), in its order, followed by the store's own
``ingested_at``. A field added to the envelope becomes a column of new files and,
through :func:`events_upgrades`, of existing ones.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa

from tracing import EnvelopeLayout

__all__ = [
    "ARROW_TYPES",
    "SQL_TYPES",
    "STORE_COLUMNS",
    "arrow_types",
    "events_indexes",
    "events_table",
    "events_upgrades",
    "insert_events",
    "table_columns",
]

#: DuckDB's type for each logical column type.
SQL_TYPES: dict[str, str] = {
    "text": "VARCHAR",
    "int": "INTEGER",
    "uint8": "UTINYINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "decimal": "DECIMAL(18, 2)",
    "timestamp": "TIMESTAMPTZ",
    "json": "JSON",
}

_TS = pa.timestamp("us", tz="UTC")

#: Arrow's type for each logical column type (JSON travels as its text).
ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "int": pa.int32(),
    "uint8": pa.uint8(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "decimal": pa.decimal128(18, 2),
    "timestamp": _TS,
    "json": pa.string(),
}

#: Columns the store adds to every row: when the batch was stored.
STORE_COLUMNS: dict[str, str] = {"ingested_at": "timestamp"}


@cache
def table_columns(layout: EnvelopeLayout) -> tuple[str, ...]:
    """The ``events`` columns: the envelope's, then the store's own."""
    return (*layout.names, *STORE_COLUMNS)


def events_table(layout: EnvelopeLayout, name: str = "events") -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the events of ``layout``."""
    lines = [
        f"    {c.name} {SQL_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}"
        for c in layout.columns
    ]
    lines += [f"    {col} {SQL_TYPES[kind]} NOT NULL" for col, kind in STORE_COLUMNS.items()]
    return f"CREATE TABLE IF NOT EXISTS {name} (\n" + ",\n".join(lines) + "\n)"


def events_upgrades(layout: EnvelopeLayout) -> tuple[str, ...]:
    """Add any envelope column an older file lacks (NULL in its old rows)."""
    return tuple(
        f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {c.name} {SQL_TYPES[c.type]}"
        for c in layout.columns
    )


def events_indexes() -> tuple[str, ...]:
    """The indexes of ``events`` (created again after a rebuild)."""
    return (
        "CREATE INDEX IF NOT EXISTS events_correlation ON events (correlation_id)",
        "CREATE INDEX IF NOT EXISTS events_id ON events (event_id)",
    )


@cache
def insert_events(layout: EnvelopeLayout) -> str:
    """Insert the registered ``_insert`` batch into ``events``, by column name."""
    names = ", ".join(table_columns(layout))
    return f"INSERT INTO events ({names})\nSELECT {names} FROM _insert"


@cache
def arrow_types(layout: EnvelopeLayout) -> dict[str, pa.DataType]:
    """The Arrow type of every column of a batch: the table's plus ``customer_name``."""
    out = {c.name: ARROW_TYPES[c.type] for c in layout.columns}
    out.update({col: ARROW_TYPES[kind] for col, kind in STORE_COLUMNS.items()})
    out["customer_name"] = pa.string()
    return out
