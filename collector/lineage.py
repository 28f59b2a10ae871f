"""The lineage store (DuckDB): its writer, its schema and the row shapes it keeps,
and the dead-letter lifecycle (states, allowed moves, every write to ``dead_letters``).

The package root (:mod:`collector`) stays light; what needs DuckDB or Arrow is
imported from here.
"""

from ._columns import EnvelopeColumns, batch_table
from ._dead_letters import (
    DEAD_LETTER_STATES,
    TRANSITIONS,
    UNRESOLVED,
    DeadLetterFilter,
    DeadLetterListing,
    DeadLetterState,
    DeadLetterStateError,
    check_move,
    dead_letter_where,
    dead_letters_page,
    move_dead_letters,
    reopen_failed_replays,
    resolve_replayed,
    transition,
    update_from_values,
)
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
    "DEAD_LETTER_STATES",
    "EVENT_COLUMNS",
    "SCHEMA_VERSION",
    "TRANSACTION_STATES",
    "TRANSITIONS",
    "UNRESOLVED",
    "UNRESOLVED_DEAD_LETTER_STATES",
    "AsyncLineage",
    "BatchOutcome",
    "Collector",
    "DeadLetterFilter",
    "DeadLetterListing",
    "DeadLetterState",
    "DeadLetterStateError",
    "EnvelopeColumns",
    "LineageStore",
    "Waiting",
    "WriteResult",
    "batch_table",
    "check_move",
    "dead_letter_where",
    "dead_letters_page",
    "event_dict",
    "iso",
    "move_dead_letters",
    "reopen_failed_replays",
    "resolve_replayed",
    "transition",
    "update_from_values",
    "waiting_for",
    "waiting_sql",
]
