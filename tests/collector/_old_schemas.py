"""The ``events`` table as older versions created it, written out as they were.

History is not derived from today's envelope: these are the tables a user's old
file really has. Create one first, then today's ``DDL`` (whose ``CREATE TABLE IF
NOT EXISTS events`` then leaves it alone) to get a whole file of that version.
"""

from __future__ import annotations

__all__ = ["SCHEMA_2_EVENTS", "SCHEMA_3_EVENTS"]

_COLUMNS = """
    correlation_id  VARCHAR NOT NULL,
    causation_id    VARCHAR,
    trace_id        VARCHAR,
    span_id         VARCHAR,
    idempotency_key VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,
    target          VARCHAR,
    kind            VARCHAR NOT NULL,
    step            VARCHAR NOT NULL,
    entity_type     VARCHAR NOT NULL,
    entity_id       VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,
    attempt         INTEGER NOT NULL,
    event_time      TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL,
    duration_ms     DOUBLE,
    amount          DECIMAL(18, 2),
    currency        VARCHAR,
    customer_id     VARCHAR,
    schema_version  INTEGER NOT NULL,
    payload         JSON,
    error_reason    VARCHAR,
    error_message   VARCHAR,
    error_retriable BOOLEAN,
    error_status    INTEGER,
    error_type      VARCHAR,
    replay_of       VARCHAR,
    replay_id       VARCHAR
"""

#: Schemas 1 and 2: event IDs were a primary key.
SCHEMA_2_EVENTS = f"CREATE TABLE events (\n    event_id VARCHAR PRIMARY KEY,{_COLUMNS});"

#: Schema 3: no key (deduped before insert), no trace flags or tracestate yet.
SCHEMA_3_EVENTS = f"CREATE TABLE events (\n    event_id VARCHAR NOT NULL,{_COLUMNS});"
