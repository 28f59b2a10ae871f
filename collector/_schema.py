"""The DuckDB lineage schema. The collector process is its only writer.

``events`` is append-only: one row per envelope. Event IDs are unique, but not by a
key constraint: the store dedupes before it inserts (``collector._event_keys``) and
``events_id`` indexes them for lookups. ``transactions`` is a per-correlation
summary kept up to date on every batch so listings never scan events.
``dead_letters`` holds the lifecycle of every dead-lettered step (open →
replay_requested → replaying → resolved, or ignored), which replay and SLA
evaluation build on.
"""

from __future__ import annotations

from tracing import ENVELOPE, EnvelopeLayout

from ._event_schema import events_table, events_upgrades

__all__ = [
    "DDL",
    "DEAD_LETTER_COLUMNS",
    "SCHEMA_VERSION",
    "UNRESOLVED_DEAD_LETTER_STATES",
    "UPGRADES",
    "ddl",
    "upgrades",
]

SCHEMA_VERSION = 4

#: Dead-letter states that still need action; a transaction with one of these is
#: ``dead_lettered`` and they count as "open" in stats and metrics.
UNRESOLVED_DEAD_LETTER_STATES = ("open", "replay_requested", "replaying")

_DDL = """
CREATE TABLE IF NOT EXISTS schema_info (
    version INTEGER NOT NULL
);

{events}

CREATE TABLE IF NOT EXISTS transactions (
    correlation_id  VARCHAR PRIMARY KEY,
    order_ref       VARCHAR,
    customer_id     VARCHAR,
    amount          DECIMAL(18, 2),
    currency        VARCHAR,
    state           VARCHAR NOT NULL,      -- in_progress|completed|on_hold|failed|dead_lettered
    started_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    last_kind       VARCHAR,
    last_system     VARCHAR,
    last_status     VARCHAR,
    event_count     INTEGER NOT NULL,
    failed_count    INTEGER NOT NULL,
    dead_letter_count INTEGER NOT NULL,     -- every dead letter ever opened
    -- added in schema version 2
    customer_name   VARCHAR,               -- a company name, not personal data
    order_ref_at    TIMESTAMPTZ,           -- event_time of the event order_ref came from
    completed_at    TIMESTAMPTZ,           -- first ok event of a completion kind
    last_event_time TIMESTAMPTZ,           -- (last_event_time, last_event_id) orders last_*
    last_event_id   VARCHAR,
    open_dead_letters INTEGER NOT NULL DEFAULT 0,  -- unresolved dead letters now
    held_at         TIMESTAMPTZ,           -- latest ok event of a hold kind
    released_at     TIMESTAMPTZ            -- latest ok event of a release kind
);

CREATE TABLE IF NOT EXISTS dead_letters (
    event_id        VARCHAR PRIMARY KEY,   -- the dead_lettered event
    correlation_id  VARCHAR NOT NULL,
    step            VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,
    target          VARCHAR,
    reason          VARCHAR NOT NULL,
    error_message   VARCHAR,
    attempts        INTEGER NOT NULL,
    amount          DECIMAL(18, 2),
    currency        VARCHAR,
    customer_id     VARCHAR,
    first_failed_at TIMESTAMPTZ NOT NULL,
    last_failed_at  TIMESTAMPTZ NOT NULL,
    state           VARCHAR NOT NULL,  -- open|replay_requested|replaying|resolved|ignored
    state_changed_at TIMESTAMPTZ NOT NULL,
    state_changed_by VARCHAR,
    state_note      VARCHAR,
    resolved_by_event VARCHAR
);

-- The Kafka consumer groups whose collector writes this file: a collector absorbs a
-- dead sibling's file only if it was written for the same group and topic.
CREATE TABLE IF NOT EXISTS consumer_groups (
    group_id VARCHAR NOT NULL,
    topic    VARCHAR NOT NULL,
    PRIMARY KEY (group_id, topic)
);

-- Cumulative ingest counters that must survive a restart (duplicates_dropped).
CREATE TABLE IF NOT EXISTS ingest_counters (
    name  VARCHAR PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS events_correlation ON events (correlation_id);
CREATE INDEX IF NOT EXISTS events_id ON events (event_id);
"""


def ddl(layout: EnvelopeLayout = ENVELOPE) -> str:
    """The whole schema, with the ``events`` table of ``layout``."""
    return _DDL.replace("{events}", events_table(layout) + ";")


DDL = ddl()

#: Idempotent upgrades run after ``DDL`` on every open, so a file created by an
#: older version gains the columns this one reads.
_UPGRADES = (
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS customer_name VARCHAR",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS order_ref_at TIMESTAMPTZ",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS completed_at TIMESTAMPTZ",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS last_event_time TIMESTAMPTZ",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS last_event_id VARCHAR",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS open_dead_letters INTEGER DEFAULT 0",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS held_at TIMESTAMPTZ",
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS released_at TIMESTAMPTZ",
    # dead_letters is small and read whole; an index on state only made updates dearer.
    "DROP INDEX IF EXISTS dead_letters_state",
)


def upgrades(layout: EnvelopeLayout = ENVELOPE) -> tuple[str, ...]:
    """The upgrades, with every envelope column an older ``events`` table lacks
    (schema 4 added ``trace_flags`` and ``tracestate`` this way)."""
    return (*_UPGRADES, *events_upgrades(layout))


UPGRADES = upgrades()

#: The columns of ``dead_letters``, in table order (for SELECT lists and inserts).
DEAD_LETTER_COLUMNS = (
    "event_id",
    "correlation_id",
    "step",
    "kind",
    "target",
    "reason",
    "error_message",
    "attempts",
    "amount",
    "currency",
    "customer_id",
    "first_failed_at",
    "last_failed_at",
    "state",
    "state_changed_at",
    "state_changed_by",
    "state_note",
    "resolved_by_event",
)
