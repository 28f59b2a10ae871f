"""SQL over the lineage's dead letters and replay's tables: selections, groups, one
dead letter, bulk updates of replay's own tables. Every write to ``dead_letters``
(and the filter) is the collector's (``collector.lineage``: ``move_dead_letters`` …).

Every function takes a DuckDB connection and runs inside the collector's
``read``/``write``; values always go as parameters.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from collector.lineage import DEAD_LETTER_COLUMNS, DeadLetterFilter, dead_letter_where
from tracing import Event, mask_payload

from ._access import EVENT_COLUMNS, event_from_row
from ._models import REPLAYABLE_STATES, DeadLetterState, ItemState, PlanItem, Selection
from ._schema import REPLAY_DDL

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "ITEM_COLUMNS",
    "REPLAY_COLUMNS",
    "allowed_states",
    "apply_ddl",
    "dead_letter_groups",
    "get_dead_letter",
    "insert_items",
    "list_replays",
    "load_events",
    "read_replay",
    "select_dead_letters",
    "selected_by",
    "states_of",
    "where_clause",
]

REPLAY_COLUMNS = (
    "replay_id",
    "state",
    "requested_by",
    "requested_at",
    "reason",
    "selection",
    "corrections",
    "needs_approval",
    "decided_by",
    "decided_at",
    "decision_note",
    "started_at",
    "finished_at",
    "total",
    "to_deliver",
    "skipped",
    "delivered",
    "succeeded",
    "failed",
    "value",
)
ITEM_COLUMNS = (
    "dead_letter_id",
    "correlation_id",
    "step",
    "target",
    "input_event_id",
    "idempotency_key",
    "action",
    "skip_reason",
    "state",
    "replayed_event_id",
    "outcome_event_id",
    "error",
    "updated_at",
)


_SELECT = f"SELECT {', '.join(DEAD_LETTER_COLUMNS)} FROM dead_letters"


def selected_by(
    selection: Selection, rule_steps: Collection[str] | None = None
) -> DeadLetterFilter:
    """The lineage's dead-letter filter for a selection (``rule_steps``: its SLA rule's)."""
    group = None
    if selection.group:
        reason, _, step = selection.group.partition(":")
        group = (reason, step)
    return DeadLetterFilter(
        states=tuple(state.value for state in selection.states),
        event_id=selection.event_id,
        correlation_id=selection.correlation_id,
        group=group,
        reason=selection.reason.value if selection.reason else None,
        target=selection.target,
        step=selection.step,
        since=selection.since,
        until=selection.until,
        steps=frozenset(rule_steps) if rule_steps is not None else None,
    )


def where_clause(
    selection: Selection, rule_steps: Collection[str] | None = None
) -> tuple[str, list[Any]]:
    """`` WHERE …`` and its parameters for a selection (``rule_steps``: its SLA rule's)."""
    return dead_letter_where(selected_by(selection, rule_steps))


def _row(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(DEAD_LETTER_COLUMNS, row, strict=True))


def select_dead_letters(
    conn: duckdb.DuckDBPyConnection, selection: Selection, rule_steps: Collection[str] | None
) -> list[dict[str, Any]]:
    """The dead letters a selection picks, oldest failure first, up to its limit."""
    where, params = where_clause(selection, rule_steps)
    rows = conn.execute(
        _SELECT + where + " ORDER BY first_failed_at, event_id LIMIT ?",
        [*params, selection.limit],
    ).fetchall()
    return [_row(row) for row in rows]


def dead_letter_groups(
    conn: duckdb.DuckDBPyConnection, selection: Selection, rule_steps: Collection[str] | None
) -> list[dict[str, Any]]:
    """Dead letters grouped by reason and step, largest first, with value per currency."""
    where, params = where_clause(selection, rule_steps)
    rows = conn.execute(
        "SELECT reason, step, any_value(target), currency, count(*), sum(amount), "
        "min(first_failed_at), max(last_failed_at), count(DISTINCT correlation_id) "
        "FROM dead_letters" + where + " GROUP BY reason, step, currency",
        params,
    ).fetchall()
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for reason, step, target, currency, count, value, first, last, transactions in rows:
        group = groups.setdefault(
            (reason, step),
            {
                "group_id": f"{reason}:{step}",
                "reason": reason,
                "step": step,
                "target": target,
                "count": 0,
                "transactions": 0,
                "value_by_currency": {},
                "first_failed_at": first,
                "last_failed_at": last,
            },
        )
        group["count"] += int(count)
        group["transactions"] += int(transactions)
        if value is not None and currency:
            group["value_by_currency"][currency] = Decimal(value)
        group["first_failed_at"] = min(group["first_failed_at"], first)
        group["last_failed_at"] = max(group["last_failed_at"], last)
    result = sorted(groups.values(), key=lambda g: (-g["count"], g["group_id"]))
    for group in result:
        group["label"] = _label(group)
    return result


def _label(group: dict[str, Any]) -> str:
    """``412 erp downstream_unavailable at erp.order.create since 02:10 worth USD 1.3M``."""
    worth = ", ".join(
        f"{currency} {_short(value)}"
        for currency, value in sorted(group["value_by_currency"].items())
    )
    since: datetime = group["first_failed_at"]
    text = f"{group['count']} {group['reason']} at {group['step']} since {since:%Y-%m-%d %H:%M}"
    return f"{text} worth {worth}" if worth else text


def _short(value: Decimal) -> str:
    for bound, suffix in (
        (Decimal(1_000_000_000), "B"),
        (Decimal(1_000_000), "M"),
        (Decimal(1_000), "k"),
    ):
        if abs(value) >= bound:
            return f"{(value / bound):.1f}{suffix}"
    return f"{value:.2f}"


def load_events(conn: duckdb.DuckDBPyConnection, event_ids: Collection[str]) -> dict[str, Event]:
    """Events by ID (the missing ones are absent from the result)."""
    ids = sorted({event_id for event_id in event_ids if event_id})
    found: dict[str, Event] = {}
    # Chunks keep the parameter list of one statement bounded.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id IN "
            f"({', '.join('?' for _ in chunk)})",
            chunk,
        ).fetchall()
        for row in rows:
            event = event_from_row(row)
            found[event.event_id] = event
    return found


def _event_view(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    data = event.model_dump(mode="json")
    # Stored payloads are masked already; masking again costs little and guards old rows.
    data["payload"] = mask_payload(event.payload)
    return data


def get_dead_letter(conn: duckdb.DuckDBPyConnection, event_id: str) -> dict[str, Any] | None:
    """One dead letter with its dead-lettered event and the input event a replay re-sends."""
    row = conn.execute(_SELECT + " WHERE event_id = ?", [event_id]).fetchone()
    if row is None:
        return None
    letter = _row(row)
    events = load_events(conn, [event_id])
    event = events.get(event_id)
    input_event = None
    if event is not None and event.causation_id:
        input_event = load_events(conn, [event.causation_id]).get(event.causation_id)
    letter["event"] = _event_view(event)
    letter["input_event"] = _event_view(input_event)
    return letter


def json_value(value: Any) -> Any:
    """A JSON column's value as Python (DuckDB hands JSON back as text)."""
    return json.loads(value) if isinstance(value, str) else value


def allowed_states(selection: Selection) -> frozenset[str]:
    """States a replay may deliver: open or in a replay, and resolved ones only
    when the selection asks for them explicitly (a redo); never ignored ones."""
    allowed = {state.value for state in REPLAYABLE_STATES}
    if DeadLetterState.RESOLVED in selection.states:
        allowed.add(DeadLetterState.RESOLVED.value)
    return frozenset(allowed)


def states_of(conn: duckdb.DuckDBPyConnection, event_ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        rows = conn.execute(
            f"SELECT event_id, state FROM dead_letters WHERE event_id IN "
            f"({', '.join('?' for _ in chunk)})",
            chunk,
        ).fetchall()
        found.update((str(r[0]), str(r[1])) for r in rows)
    return found


def apply_ddl(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(REPLAY_DDL)


def insert_items(
    conn: duckdb.DuckDBPyConnection, replay_id: str, items: Sequence[PlanItem], now: datetime
) -> None:
    # Multi-row VALUES in chunks: far quicker than one statement per row.
    for start in range(0, len(items), 200):
        chunk = items[start : start + 200]
        params: list[Any] = []
        for item in chunk:
            params.extend(
                [
                    replay_id,
                    item.dead_letter_id,
                    item.correlation_id,
                    item.step,
                    item.target,
                    item.input_event_id,
                    item.idempotency_key,
                    item.action,
                    item.skip_reason,
                    ItemState.PENDING.value
                    if item.action == "deliver"
                    else ItemState.SKIPPED.value,
                    now,
                ]
            )
        marks = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
        conn.execute(
            "INSERT INTO replay_items (replay_id, dead_letter_id, correlation_id, step, target, "
            "input_event_id, idempotency_key, action, skip_reason, state, updated_at) "
            f"VALUES {marks}",
            params,
        )


def _decode_replay(row: Sequence[Any]) -> dict[str, Any]:
    record = dict(zip(REPLAY_COLUMNS, row, strict=True))
    for key in ("selection", "corrections", "value"):
        record[key] = json_value(record[key])
    return record


def read_replay(
    conn: duckdb.DuckDBPyConnection, replay_id: str, *, items: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One replay's row and (with ``items``) its items, or ``(None, [])``."""
    row = conn.execute(
        f"SELECT {', '.join(REPLAY_COLUMNS)} FROM replays WHERE replay_id = ?", [replay_id]
    ).fetchone()
    if row is None:
        return None, []
    rows = (
        conn.execute(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM replay_items WHERE replay_id = ? "
            "ORDER BY dead_letter_id",
            [replay_id],
        ).fetchall()
        if items
        else []
    )
    return _decode_replay(row), [dict(zip(ITEM_COLUMNS, r, strict=True)) for r in rows]


def list_replays(
    conn: duckdb.DuckDBPyConnection, *, state: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Replays newest first (optionally in one state) and the total."""
    where, params = (" WHERE state = ?", [state]) if state else ("", [])
    total = conn.execute("SELECT count(*) FROM replays" + where, params).fetchone()
    rows = conn.execute(
        f"SELECT {', '.join(REPLAY_COLUMNS)} FROM replays{where} "
        "ORDER BY requested_at DESC, replay_id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [_decode_replay(r) for r in rows], int(total[0]) if total else 0
