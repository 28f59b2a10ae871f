"""The dead-letter lifecycle: its states, the moves allowed between them, and every
statement that writes the lineage's ``dead_letters`` table.

A dead letter is opened by the collector when a ``dead_lettered`` event is stored
(open → replay_requested → replaying → resolved, or ignored), and then moves only
along ``TRANSITIONS``:

=================  ==========================================================
from               to
=================  ==========================================================
open               replay_requested, replaying, resolved, ignored
replay_requested   open (rejected, failed), replaying, resolved
replaying          open (failed, interrupted), resolved
resolved           replaying (only a replay that redoes it explicitly)
ignored            nothing: it is final
=================  ==========================================================

A move the table does not allow is refused with :class:`DeadLetterStateError` (HTTP 409)
before anything is written.

No other module inserts into or updates ``dead_letters``
(``tests/collector/test_dead_letters.py`` walks the packages to hold that). Every
function takes the DuckDB connection of the caller's write transaction
(``LineageStore.write``, or the batch transaction of the collector); values always
travel as parameters. The one list query (``GET /api/v1/dead-letters``) lives here
too, with its filter, so the collector and replay select dead letters alike.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import duckdb

from tracing import InterlockError, ValidationError

from ._lineage_rows import iso, money
from ._schema import DEAD_LETTER_COLUMNS, UNRESOLVED_DEAD_LETTER_STATES

__all__ = [
    "DEAD_LETTER_STATES",
    "FAILURE_COLUMNS",
    "TRANSITIONS",
    "UNRESOLVED",
    "DeadLetterFilter",
    "DeadLetterListing",
    "DeadLetterState",
    "DeadLetterStateError",
    "absorb_dead_letters",
    "check_move",
    "dead_letter_where",
    "dead_letters_page",
    "move_dead_letters",
    "open_dead_letters",
    "reopen_failed_replays",
    "resolve_by_event",
    "resolve_replayed",
    "transition",
    "update_from_values",
]


class DeadLetterState(StrEnum):
    """Where a dead letter is in its lifecycle (the ``state`` column)."""

    OPEN = "open"
    REPLAY_REQUESTED = "replay_requested"
    REPLAYING = "replaying"
    RESOLVED = "resolved"
    IGNORED = "ignored"


#: Every state, in lifecycle order (``all`` or empty in a query means any).
DEAD_LETTER_STATES = tuple(s.value for s in DeadLetterState)
#: The states that still need action (``collector._schema.UNRESOLVED_DEAD_LETTER_STATES``).
UNRESOLVED = tuple(DeadLetterState(s) for s in UNRESOLVED_DEAD_LETTER_STATES)

_S = DeadLetterState
#: The moves a dead letter may make; anything else is a ``DeadLetterStateError``.
TRANSITIONS: Mapping[DeadLetterState, frozenset[DeadLetterState]] = {
    _S.OPEN: frozenset({_S.REPLAY_REQUESTED, _S.REPLAYING, _S.RESOLVED, _S.IGNORED}),
    _S.REPLAY_REQUESTED: frozenset({_S.OPEN, _S.REPLAYING, _S.RESOLVED}),
    _S.REPLAYING: frozenset({_S.OPEN, _S.RESOLVED}),
    _S.RESOLVED: frozenset({_S.REPLAYING}),
    _S.IGNORED: frozenset(),
}

#: The columns a new dead letter takes from its failure (the rest are lifecycle).
FAILURE_COLUMNS = DEAD_LETTER_COLUMNS[: DEAD_LETTER_COLUMNS.index("state")]

#: Statements with an ID list go in chunks, so the parameter list stays bounded.
_CHUNK = 500


class DeadLetterStateError(InterlockError):
    """A dead letter cannot move from its state to the one asked (HTTP 409)."""

    http_status = 409

    def __init__(
        self,
        message: str,
        *,
        event_id: str | None = None,
        state: str | None = None,
        to: str | None = None,
    ) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.state = state
        self.to = to


def check_move(src: str, dst: str, *, event_id: str | None = None) -> None:
    """Raise ``DeadLetterStateError`` unless ``TRANSITIONS`` allows ``src`` → ``dst``."""
    try:
        allowed = DeadLetterState(dst) in TRANSITIONS[DeadLetterState(src)]
    except ValueError:
        allowed = False
    if not allowed:
        which = f"dead letter {event_id}" if event_id else "a dead letter"
        raise DeadLetterStateError(
            f"{which} cannot move from {src} to {dst}", event_id=event_id, state=src, to=dst
        )


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


_UNRESOLVED_VALUES = [s.value for s in UNRESOLVED]


# -- opening --------------------------------------------------------------------------


def open_dead_letters(
    conn: duckdb.DuckDBPyConnection,
    failures: Sequence[Mapping[str, Any]],
    *,
    at: datetime,
    by: str = "collector",
) -> int:
    """Open a dead letter for each failure (keys: ``FAILURE_COLUMNS``); one whose
    event ID has a dead letter already is left alone. Returns how many were opened."""
    columns = ", ".join(DEAD_LETTER_COLUMNS)
    sql = (
        f"INSERT INTO dead_letters ({columns}) VALUES ({_marks(len(DEAD_LETTER_COLUMNS))}) "
        "ON CONFLICT DO NOTHING RETURNING event_id"
    )
    opened = 0
    for failure in failures:
        row = [failure[c] for c in FAILURE_COLUMNS]
        row += [DeadLetterState.OPEN.value, at, by, None, None]
        opened += len(conn.execute(sql, row).fetchall())
    return opened


# -- moving ---------------------------------------------------------------------------


def move_dead_letters(
    conn: duckdb.DuckDBPyConnection,
    event_ids: Sequence[str],
    to: DeadLetterState,
    *,
    from_states: Collection[DeadLetterState],
    by: str,
    at: datetime,
    note: str | None,
    resolved_by_event: str | None = None,
) -> list[str]:
    """Move those of ``event_ids`` now in one of ``from_states`` to ``to``; the IDs
    that moved (the others are left as they are).

    Every ``from_states`` → ``to`` must be a move ``TRANSITIONS`` allows, or
    ``DeadLetterStateError`` is raised and nothing is written.
    """
    froms = sorted({DeadLetterState(s).value for s in from_states})
    for src in froms:
        check_move(src, to.value)
    if not froms:
        return []
    moved: list[str] = []
    for chunk in _chunks(event_ids):
        rows = conn.execute(
            "UPDATE dead_letters SET state = ?, state_changed_at = ?, state_changed_by = ?, "
            "state_note = ?, resolved_by_event = coalesce(?, resolved_by_event) "
            f"WHERE event_id IN ({_marks(len(chunk))}) AND state IN ({_marks(len(froms))}) "
            "RETURNING event_id",
            [to.value, at, by, note, resolved_by_event, *chunk, *froms],
        ).fetchall()
        moved.extend(str(row[0]) for row in rows)
    return moved


def transition(
    conn: duckdb.DuckDBPyConnection,
    event_id: str,
    to: DeadLetterState,
    *,
    by: str,
    at: datetime,
    note: str | None,
    from_states: Collection[DeadLetterState] | None = None,
) -> DeadLetterState | None:
    """Move one dead letter to ``to``; its state before, or None if there is none.

    Raises ``DeadLetterStateError``, writing nothing, when its state cannot move to
    ``to`` (``TRANSITIONS``) or is not one of ``from_states`` (when given).
    """
    row = conn.execute("SELECT state FROM dead_letters WHERE event_id = ?", [event_id]).fetchone()
    if row is None:
        return None
    now = DeadLetterState(str(row[0]))
    if from_states is not None and now not in from_states:
        allowed = " or ".join(sorted(s.value for s in from_states))
        raise DeadLetterStateError(
            f"dead letter {event_id} is {now.value}; only one that is {allowed} can be {to.value}",
            event_id=event_id,
            state=now.value,
            to=to.value,
        )
    check_move(now.value, to.value, event_id=event_id)
    move_dead_letters(conn, [event_id], to, from_states=(now,), by=by, at=at, note=note)
    return now


def resolve_by_event(
    conn: duckdb.DuckDBPyConnection,
    event_id: str,
    *,
    outcome_event_id: str,
    at: datetime,
    note: str,
    by: str = "collector",
) -> bool:
    """Resolve an unresolved dead letter by a later successful event; whether it moved."""
    moved = move_dead_letters(
        conn,
        [event_id],
        DeadLetterState.RESOLVED,
        from_states=UNRESOLVED,
        by=by,
        at=at,
        note=note,
        resolved_by_event=outcome_event_id,
    )
    return bool(moved)


def update_from_values(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    rows: Sequence[Sequence[Any]],
    *,
    before: Sequence[Any] = (),
    after: Sequence[Any] = (),
) -> None:
    """An ``UPDATE … FROM (VALUES {values})`` over ``rows`` in chunks: one statement per
    chunk instead of one per row. ``{b0}``… are ``before``, ``{a0}``… ``after``."""
    if not rows:
        return
    width = len(rows[0])
    # Numbered parameters: DuckDB binds an UPDATE's FROM before its SET, so plain
    # ``?`` would be numbered in an order other than the text's.
    fixed = {f"b{i}": f"${i + 1}" for i in range(len(before))}
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        n = len(before)
        marks = []
        for _ in chunk:
            cells = ", ".join(f"CAST(${n + k + 1} AS VARCHAR)" for k in range(width))
            marks.append(f"({cells})")
            n += width
        tail = {f"a{i}": f"${n + i + 1}" for i in range(len(after))}
        params = [*before, *(value for row in chunk for value in row), *after]
        conn.execute(sql.format(values=", ".join(marks), **fixed, **tail), params)


def resolve_replayed(
    conn: duckdb.DuckDBPyConnection,
    outcomes: Sequence[tuple[str, str | None]],
    *,
    by: str,
    at: datetime,
    note: str,
) -> None:
    """Resolve each unresolved dead letter of ``(event_id, outcome_event_id)`` whose
    redo succeeded, naming the outcome event that resolved it."""
    for src in UNRESOLVED:
        check_move(src.value, DeadLetterState.RESOLVED.value)
    marks = ", ".join(f"{{a{i}}}" for i in range(len(UNRESOLVED)))
    update_from_values(
        conn,
        "UPDATE dead_letters AS d SET state = {b0}, state_changed_at = {b1}, "
        "state_changed_by = {b2}, state_note = {b3}, resolved_by_event = v.outcome "
        "FROM (VALUES {values}) AS v(dl, outcome) "
        f"WHERE d.event_id = v.dl AND d.state IN ({marks})",
        [[dl, outcome] for dl, outcome in outcomes],
        before=[DeadLetterState.RESOLVED.value, at, by, note],
        after=_UNRESOLVED_VALUES,
    )


def reopen_failed_replays(
    conn: duckdb.DuckDBPyConnection,
    failures: Sequence[tuple[str, str]],
    *,
    by: str,
    at: datetime,
    note: str,
) -> list[str]:
    """Put the dead letters of ``(event_id, error)`` whose redo failed back to open,
    counting the attempt (``attempts`` + 1, ``last_failed_at``, ``error_message``).

    Only those in a replay (``replaying`` or ``replay_requested``) move; the IDs that did.
    """
    reopened = move_dead_letters(
        conn,
        [dl for dl, _ in failures],
        DeadLetterState.OPEN,
        from_states=(DeadLetterState.REPLAYING, DeadLetterState.REPLAY_REQUESTED),
        by=by,
        at=at,
        note=note,
    )
    moved = set(reopened)
    update_from_values(
        conn,
        "UPDATE dead_letters AS d SET attempts = d.attempts + 1, last_failed_at = {b0}, "
        "error_message = v.error FROM (VALUES {values}) AS v(dl, error) "
        "WHERE d.event_id = v.dl",
        [[dl, error] for dl, error in failures if dl in moved],
        before=[at],
    )
    return reopened


# -- absorbing a sibling's file -------------------------------------------------------


def _legal_pairs() -> str:
    pairs = [(s.value, s.value) for s in DeadLetterState]
    pairs += [(src.value, dst.value) for src, dsts in TRANSITIONS.items() for dst in dsts]
    return ", ".join(f"('{a}', '{b}')" for a, b in sorted(pairs))


def absorb_dead_letters(conn: duckdb.DuckDBPyConnection, source: str) -> None:
    """Merge the dead letters of the lineage attached as ``source`` (a dead sibling's).

    The events were stored already, so the lifecycle they imply has been rebuilt
    here. A dead letter whose event was a duplicate here (so nothing reopened it)
    keeps the sibling's record as it is; and an operator's (or replay's) later
    decision on the sibling is carried over when it is a move ``TRANSITIONS``
    allows from the state here (or the same state, with the sibling's note).

    "Later" is measured against what the state here stands for, not when it was
    written: a state the collector rebuilt from events stands at the event that
    set it (the resolving event, else the last failure), so a decision made on
    the sibling before the absorb still counts.
    """
    columns = ", ".join(DEAD_LETTER_COLUMNS)
    conn.execute(
        f"INSERT INTO dead_letters ({columns}) SELECT {columns} FROM {source}.dead_letters "
        "ON CONFLICT DO NOTHING"
    )
    conn.execute(
        f"""
        UPDATE dead_letters SET
            state = s.state, state_changed_at = s.state_changed_at,
            state_changed_by = s.state_changed_by, state_note = s.state_note,
            resolved_by_event = coalesce(dead_letters.resolved_by_event, s.resolved_by_event)
        FROM {source}.dead_letters AS s
        WHERE dead_letters.event_id = s.event_id
          AND s.state_changed_at > CASE
                WHEN dead_letters.state_changed_by = 'collector' THEN coalesce(
                    (SELECT e.recorded_at FROM events AS e
                     WHERE e.event_id = dead_letters.resolved_by_event),
                    dead_letters.last_failed_at)
                ELSE dead_letters.state_changed_at END
          AND s.state_changed_by IS DISTINCT FROM 'collector'
          AND (dead_letters.state, s.state) IN ({_legal_pairs()})
        """
    )


# -- the one list ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters: every criterion given narrows (they combine with AND).

    ``group`` is ``(reason, step)``; ``steps`` limits to those steps (an SLA rule's:
    empty matches none); ``states`` empty means any state; ``since``/``until`` bound
    the first failure.
    """

    states: tuple[str, ...] = ("open",)
    event_id: str | None = None
    correlation_id: str | None = None
    group: tuple[str, str] | None = None
    reason: str | None = None
    target: str | None = None
    step: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    steps: frozenset[str] | None = None


def dead_letter_where(selected: DeadLetterFilter) -> tuple[str, list[Any]]:
    """`` WHERE …`` (or empty) and its parameters for ``selected``."""
    clauses: list[str] = []
    params: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        clauses.append(sql)
        params.extend(values)

    for column, value in (
        ("event_id", selected.event_id),
        ("correlation_id", selected.correlation_id),
        ("reason", selected.reason),
        ("target", selected.target),
        ("step", selected.step),
    ):
        if value:
            add(f"{column} = ?", value)
    if selected.group:
        add("reason = ? AND step = ?", *selected.group)
    if selected.since:
        add("first_failed_at >= ?", selected.since)
    if selected.until:
        add("first_failed_at < ?", selected.until)
    if selected.steps is not None:
        if selected.steps:
            steps = sorted(selected.steps)
            add(f"step IN ({_marks(len(steps))})", *steps)
        else:
            clauses.append("FALSE")
    if selected.states:
        add(f"state IN ({_marks(len(selected.states))})", *selected.states)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@dataclass(frozen=True)
class DeadLetterListing:
    """A page of the list: the items (API JSON), the total matching, and the cursor of
    the page after this one (None on the last)."""

    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None


def _cursor(item: Mapping[str, Any]) -> str:
    raw = json.dumps([item["last_failed_at"], item["event_id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, event_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(str(at).replace("Z", "+00:00")), str(event_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValidationError("cursor: not a cursor this list handed out", field="cursor") from exc


def _item(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(DEAD_LETTER_COLUMNS, row, strict=True))
    item["amount"] = money(item["amount"])
    for key in ("first_failed_at", "last_failed_at", "state_changed_at"):
        item[key] = iso(item[key])
    return item


def dead_letters_page(
    cur: duckdb.DuckDBPyConnection,
    selected: DeadLetterFilter,
    *,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
) -> DeadLetterListing:
    """Dead letters, most recent failure first (then event ID, descending), as API JSON.

    ``cursor`` (a page's ``next_cursor``) continues after that page; ``offset``
    skips rows after it. ``total`` counts every match, whatever the cursor.
    """
    where, params = dead_letter_where(selected)
    total_row = cur.execute("SELECT count(*) FROM dead_letters" + where, params).fetchone()
    page_where, page_params = where, list(params)
    if cursor:
        at, event_id = _after(cursor)
        keyset = "(last_failed_at < ? OR (last_failed_at = ? AND event_id < ?))"
        page_where = (where + " AND " if where else " WHERE ") + keyset
        page_params += [at, at, event_id]
    rows = cur.execute(
        f"SELECT {', '.join(DEAD_LETTER_COLUMNS)} FROM dead_letters{page_where} "
        "ORDER BY last_failed_at DESC, event_id DESC LIMIT ? OFFSET ?",
        [*page_params, limit + 1, offset],
    ).fetchall()
    items = [_item(r) for r in rows[:limit]]
    more = len(rows) > limit and bool(items)
    return DeadLetterListing(
        items, int(total_row[0]) if total_row else 0, _cursor(items[-1]) if more else None
    )
