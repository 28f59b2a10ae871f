"""DDL of replay's own tables in the lineage database, applied by the service on start.

``replays`` is one row per replay request with its selection, approval and counts;
``replay_items`` one row per dead letter a replay covers, with its per-item outcome;
``approvals`` records every approve or reject decision; ``audit_log`` is the
append-only, hash-chained trail (see :mod:`replay._audit`).
"""

from __future__ import annotations

__all__ = ["REPLAY_DDL"]

REPLAY_DDL = """
CREATE TABLE IF NOT EXISTS replays (
    replay_id       VARCHAR PRIMARY KEY,
    -- pending_approval | approved | rejected | running | completed | failed
    state           VARCHAR NOT NULL,
    requested_by    VARCHAR NOT NULL,
    requested_at    TIMESTAMPTZ NOT NULL,
    reason          VARCHAR NOT NULL,
    selection       JSON NOT NULL,
    corrections     JSON,
    needs_approval  BOOLEAN NOT NULL,
    decided_by      VARCHAR,
    decided_at      TIMESTAMPTZ,
    decision_note   VARCHAR,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    total           INTEGER NOT NULL,
    to_deliver      INTEGER NOT NULL,
    skipped         INTEGER NOT NULL DEFAULT 0,
    delivered       INTEGER NOT NULL DEFAULT 0,
    succeeded       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    value           JSON
);

CREATE TABLE IF NOT EXISTS replay_items (
    replay_id        VARCHAR NOT NULL,
    dead_letter_id   VARCHAR NOT NULL,
    correlation_id   VARCHAR NOT NULL,
    step             VARCHAR NOT NULL,
    target           VARCHAR,
    input_event_id   VARCHAR,
    idempotency_key  VARCHAR,
    action           VARCHAR NOT NULL,   -- deliver | skip
    skip_reason      VARCHAR,
    state            VARCHAR NOT NULL,   -- pending|skipped|delivered|succeeded|failed|timeout
    replayed_event_id VARCHAR,
    outcome_event_id VARCHAR,
    error            VARCHAR,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (replay_id, dead_letter_id)
);

CREATE TABLE IF NOT EXISTS approvals (
    replay_id   VARCHAR NOT NULL,
    decision    VARCHAR NOT NULL,   -- approved | rejected
    decided_by  VARCHAR NOT NULL,
    role        VARCHAR NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL,
    note        VARCHAR
);

CREATE TABLE IF NOT EXISTS audit_log (
    seq         BIGINT PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    actor       VARCHAR NOT NULL,
    role        VARCHAR NOT NULL,
    action      VARCHAR NOT NULL,
    subject     VARCHAR,
    why         VARCHAR,
    what        JSON NOT NULL,
    outcome     VARCHAR NOT NULL,
    prev_hash   VARCHAR NOT NULL,
    hash        VARCHAR NOT NULL
);
"""
