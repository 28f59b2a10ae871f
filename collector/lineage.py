"""The lineage store (DuckDB): its writer, its schema and the row shapes it keeps.

The package root (:mod:`collector`) stays light; what needs DuckDB or Arrow is
imported from here.
"""

from ._columns import EnvelopeColumns, batch_table
from ._ingest import Collector
from ._lineage import (
    CHECKPOINT_THRESHOLD,
    TRANSACTION_STATES,
    AsyncLineage,
    BatchOutcome,
    LineageStore,
    WriteResult,
)
from ._lineage_rows import EVENT_COLUMNS, event_dict, iso
from ._schema import DDL, DEAD_LETTER_COLUMNS, SCHEMA_VERSION, UNRESOLVED_DEAD_LETTER_STATES
from ._waiting import Waiting, waiting_for, waiting_sql

__all__ = [
    "CHECKPOINT_THRESHOLD",
    "DDL",
    "DEAD_LETTER_COLUMNS",
    "EVENT_COLUMNS",
    "SCHEMA_VERSION",
    "TRANSACTION_STATES",
    "UNRESOLVED_DEAD_LETTER_STATES",
    "AsyncLineage",
    "BatchOutcome",
    "Collector",
    "EnvelopeColumns",
    "LineageStore",
    "Waiting",
    "WriteResult",
    "batch_table",
    "event_dict",
    "iso",
    "waiting_for",
    "waiting_sql",
]
