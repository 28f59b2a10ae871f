"""The lineage in DuckLake: Parquet data files under a data path, and a catalog.

The catalog is a local DuckDB file for one machine (the embedded default, no
server) or a PostgreSQL database (``postgres:dbname=lake host=… user=…``) that
any number of collector processes on any number of machines share.

Exactly once, by DuckLake's own transactions: ``LakeStore.commit_batch`` inserts
a batch's rows and advances the stored offsets of the partitions the batch
covers in **one** DuckLake transaction. Each partition's offset is one row in a
table of its own (DuckLake tracks write conflicts per table, so partitions
sharing one table would fence each other). The update names the offset the
writer started from (``WHERE next_offset = start``), so a writer that lost its
partition is refused either way:

- the new owner committed before the zombie's transaction began: the zombie's
  update matches no row, and the whole batch is rolled back;
- the two transactions overlap: DuckLake refuses the second commit on the
  conflict on that partition's offsets table.

Both raise ``LakeFenced``; the batch is dropped and the caller seeks to the
lake's offsets again.

Durability: DuckLake 1.5.5 writes the data files while the transaction runs but
does not fsync them before its catalog commit names them. Before committing,
this store fsyncs every file the transaction added under the events table's
folder (and the folder), so a power loss cannot leave the catalog naming torn
files. The offsets rows are inlined in the catalog (no data files), so the
catalog's commit makes them durable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from tracing import ConfigError, StoreError

__all__ = [
    "EVENTS_TABLE",
    "LakeFenced",
    "LakeSettings",
    "LakeStore",
    "PartitionOffset",
    "extension_path",
]

#: The lineage's events in the lake (same columns as the DuckDB lineage's table).
EVENTS_TABLE = "events"
_ALIAS = "lake"
_VERSION = "v1.5.5"
_SAFE = re.compile(r"[^a-z0-9]+")


class LakeFenced(StoreError):
    """A batch was refused because its offsets moved under it (a zombie writer).

    Nothing of the batch is stored; the writer must seek to ``LakeStore.offsets``.
    """


def extension_path(name: str) -> Path:
    """Where the ``duckdb-extension-<name>`` wheel keeps the extension for v1.5.5."""
    import importlib

    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise ConfigError(
            "lineage.catalog",
            f"needs the DuckDB extension {name!r} (pip install "
            f"duckdb-extension-{name}=={_VERSION[1:]})",
        ) from exc
    assert module.__file__ is not None
    path = Path(module.__file__).parent / "extensions" / _VERSION / f"{name}.duckdb_extension"
    if not path.exists():
        raise ConfigError("lineage.catalog", f"no {name} extension for DuckDB {_VERSION} at {path}")
    return path


@dataclass(frozen=True)
class LakeSettings:
    """Where the lake lives.

    ``data_path`` holds the Parquet files (a local or shared folder). ``catalog``
    is a DuckLake catalog: ``None`` for a DuckDB file ``catalog.ducklake`` beside
    the data (one process only), or ``postgres:<libpq connection string>``
    (``[lineage] catalog``, ``INTERLOCK_LINEAGE_CATALOG``) for many processes.
    """

    data_path: Path
    catalog: str | None = None

    def __post_init__(self) -> None:
        if self.catalog is not None and not self.catalog.startswith("postgres:"):
            raise ConfigError(
                "lineage.catalog",
                "must start with 'postgres:' followed by libpq keywords, got "
                f"{self.catalog.split(' ', 1)[0]!r}",
            )

    @property
    def catalog_url(self) -> str:
        if self.catalog is None:
            return f"ducklake:{self.data_path / 'catalog.ducklake'}"
        return f"ducklake:{self.catalog}"


@dataclass(frozen=True)
class PartitionOffset:
    """A batch's span of one partition: it starts at ``start`` (the offset stored
    in the lake) and the next batch starts at ``stop``."""

    start: int
    stop: int


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _offsets_table(group: str, topic: str, partition: int) -> str:
    # One table per (group, topic, partition): readable, bounded, collision-free.
    slug = _SAFE.sub("_", f"{group}_{topic}".lower()).strip("_")[:40]
    digest = hashlib.blake2b(f"{group}\0{topic}".encode(), digest_size=4).hexdigest()
    return f"offsets_{slug}_{digest}_p{partition}"


class LakeStore:
    """One connection to the lake, used from one thread at a time (a lock guards it).

    ``open`` loads the extensions from their wheels, attaches the catalog and
    creates the events table from ``schema`` if the lake has none yet.
    """

    def __init__(self, settings: LakeSettings, schema: pa.Schema) -> None:
        self.settings = settings
        self.schema = schema
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._known: dict[Path, set[str]] = {}
        self._partitions: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------

    def open(self) -> None:
        if self._conn is not None:
            return
        self.settings.data_path.mkdir(parents=True, exist_ok=True)
        conn = duckdb.connect()
        try:
            for name in ("ducklake", "postgres"):
                conn.execute(f"INSTALL '{extension_path(name)}'")
                conn.execute(f"LOAD {name}")
            # Inlining off: every batch lands in a Parquet file this store fsyncs,
            # not in catalog rows (docs/lineage-lake.md).
            # ATTACH takes no parameters: the two settings are quoted as literals.
            url, data = _literal(self.settings.catalog_url), _literal(str(self.settings.data_path))
            conn.execute(f"ATTACH {url} AS {_ALIAS} (DATA_PATH {data}, DATA_INLINING_ROW_LIMIT 0)")
        except duckdb.Error as exc:
            conn.close()
            raise StoreError(f"cannot attach the lineage lake: {exc}") from exc
        self._conn = conn
        self._retry_ddl(self._create_events)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> LakeStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            raise StoreError("the lineage lake is not open")
        return self._conn

    # -- schema -----------------------------------------------------------------------

    def _retry_ddl(self, create: Any, attempts: int = 20) -> None:
        # Two processes creating the same table race in the catalog; the loser
        # sees the winner's table on its next try.
        for attempt in range(attempts):
            try:
                create()
                return
            except duckdb.Error as exc:
                if attempt == attempts - 1:
                    raise StoreError(f"cannot create the lake's tables: {exc}") from exc
                self._rollback()

    def _create_events(self) -> None:
        empty = self.schema.empty_table()  # noqa: F841 -- read by DuckDB's replacement scan
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_ALIAS}.{EVENTS_TABLE} AS SELECT * FROM empty"
        )

    def _ensure_partition(self, group: str, topic: str, partition: int) -> str:
        table = _offsets_table(group, topic, partition)
        if table in self._partitions:
            return table

        def create() -> None:
            conn = self.conn
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_ALIAS}.{table} "
                "(consumer_group VARCHAR, topic VARCHAR, kafka_partition INTEGER, "
                "next_offset BIGINT)"
            )
            # The offsets row lives in the catalog itself (inlined), not in a new
            # Parquet file per update: an update is then a catalog write, made
            # durable by the catalog's own commit, and costs no data files. Set
            # before the first row, outside a transaction (DuckLake's rule).
            conn.execute(
                f"CALL {_ALIAS}.set_option('data_inlining_row_limit', 10, table_name => ?)",
                [table],
            )
            conn.execute("BEGIN")
            found = conn.execute(f"SELECT count(*) FROM {_ALIAS}.{table}").fetchone()
            if found is not None and found[0] == 0:
                # Two first writers may both insert a row of 0 (appends do not
                # conflict); equal rows move together, see ``commit_batch``.
                conn.execute(
                    f"INSERT INTO {_ALIAS}.{table} VALUES (?, ?, ?, 0)", [group, topic, partition]
                )
            conn.execute("COMMIT")

        self._retry_ddl(create)
        self._partitions.add(table)
        return table

    # -- offsets ----------------------------------------------------------------------

    def offsets(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        """The next offset to consume per partition, as the lake has it (0 if none yet)."""
        with self._lock:
            out: dict[int, int] = {}
            for partition in partitions:
                table = self._ensure_partition(group, topic, partition)
                try:
                    row = self.conn.execute(
                        f"SELECT max(next_offset) FROM {_ALIAS}.{table}"
                    ).fetchone()
                except duckdb.Error as exc:
                    raise StoreError(f"cannot read the lake's offsets: {exc}") from exc
                out[partition] = int(row[0]) if row is not None and row[0] is not None else 0
            return out

    # -- the write path ---------------------------------------------------------------

    def commit_batch(
        self,
        group: str,
        topic: str,
        rows: pa.Table,
        offsets: Mapping[int, PartitionOffset],
    ) -> int:
        """Store ``rows`` and advance ``offsets`` in one DuckLake transaction.

        Returns the rows stored. Raises ``LakeFenced`` if any partition's stored
        offset is no longer the span's ``start`` (nothing is stored then), and
        ``StoreError`` for any other failure (nothing is stored either).
        """
        with self._lock:
            tables = {p: self._ensure_partition(group, topic, p) for p in offsets}
            conn = self.conn
            try:
                conn.execute("BEGIN")
                for partition, span in sorted(offsets.items()):
                    moved = conn.execute(
                        f"UPDATE {_ALIAS}.{tables[partition]} SET next_offset = ? "
                        "WHERE next_offset = ?",
                        [span.stop, span.start],
                    ).fetchone()
                    if moved is None or moved[0] < 1:
                        raise LakeFenced(
                            f"partition {partition} of {topic!r} moved past offset "
                            f"{span.start} (another collector owns it now)"
                        )
                if rows.num_rows:
                    batch = rows.select(self.schema.names)  # noqa: F841 -- replacement scan
                    conn.execute(f"INSERT INTO {_ALIAS}.{EVENTS_TABLE} SELECT * FROM batch")
                self._sync_new_files([EVENTS_TABLE])
                conn.execute("COMMIT")
            except LakeFenced:
                self._rollback()
                raise
            except duckdb.TransactionException as exc:
                self._rollback()
                raise LakeFenced(f"commit refused on an offsets conflict: {exc}") from exc
            except duckdb.Error as exc:
                self._rollback()
                raise StoreError(f"lake commit failed: {exc}") from exc
            return int(rows.num_rows)

    def _rollback(self) -> None:
        # No transaction open means nothing to undo.
        with contextlib.suppress(duckdb.Error):
            self.conn.execute("ROLLBACK")

    def _sync_new_files(self, tables: list[str]) -> None:
        """fsync the data files not yet synced under each table's folder, then the folder."""
        root = self.settings.data_path / "main"
        for table in tables:
            folder = root / table
            try:
                names = set(os.listdir(folder))
            except FileNotFoundError:
                continue
            known = self._known.setdefault(folder, set())
            fresh = names - known
            for name in fresh:
                fd = os.open(folder / name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if fresh:
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            # Names of files another process wrote are synced once here too; cheap
            # and harmless, and the set stays the folder's listing.
            known |= fresh

    # -- reads ------------------------------------------------------------------------

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read against the lake (tables are ``lake.<name>``)."""
        with self._lock:
            try:
                return self.conn.execute(sql, params or []).fetchall()
            except duckdb.Error as exc:
                raise StoreError(f"lake read failed: {exc}") from exc
