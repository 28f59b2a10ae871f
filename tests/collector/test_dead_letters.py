"""The dead-letter lifecycle has one owner: its states, its moves, and every write."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from _collector_events import eid, make_event

from collector.lineage import (
    DEAD_LETTER_STATES,
    TRANSITIONS,
    UNRESOLVED_DEAD_LETTER_STATES,
    DeadLetterFilter,
    DeadLetterState,
    DeadLetterStateError,
    LineageStore,
    check_move,
    move_dead_letters,
    transition,
)
from tracing import Reason, Status

ROOT = Path(__file__).resolve().parents[2]
#: The packages that ship: every module there is held to the rule.
PACKAGES = ("adapters", "collector", "dashboards", "replay", "sla_rules", "tracing")
OWNER = Path("collector/_dead_letters.py")
#: A statement that writes the table, however the SQL text is spelt or split.
WRITES = re.compile(
    r"\b(INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|TRUNCATE)"
    r"\s+(\w+\.)?\"?dead_letters\b",
    re.IGNORECASE,
)
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
S = DeadLetterState


def _writers() -> Iterator[tuple[Path, int, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for match in WRITES.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                yield path.relative_to(ROOT), line, match.group(0)


def test_only_the_owner_module_writes_dead_letters() -> None:
    found = list(_writers())
    others = [f"{path}:{line}: {sql}" for path, line, sql in found if path != OWNER]
    assert not others, "dead_letters is written outside collector/_dead_letters.py:\n" + (
        "\n".join(others)
    )
    # The walk sees the owner's statements, so it would see anyone else's.
    assert {sql.split()[0].upper() for path, _, sql in found if path == OWNER} == {
        "INSERT",
        "UPDATE",
    }


def test_the_states_are_the_schemas() -> None:
    assert DEAD_LETTER_STATES == ("open", "replay_requested", "replaying", "resolved", "ignored")
    assert set(TRANSITIONS) == set(DeadLetterState)
    assert all(s in DEAD_LETTER_STATES for s in UNRESOLVED_DEAD_LETTER_STATES)
    assert TRANSITIONS[S.IGNORED] == frozenset()


@pytest.mark.parametrize("src", list(DeadLetterState))
@pytest.mark.parametrize("dst", list(DeadLetterState))
def test_check_move_allows_exactly_the_table(src: DeadLetterState, dst: DeadLetterState) -> None:
    if dst in TRANSITIONS[src]:
        check_move(src, dst)
    else:
        with pytest.raises(DeadLetterStateError) as refused:
            check_move(src, dst, event_id="e1")
        assert refused.value.http_status == 409
        assert (refused.value.state, refused.value.to) == (src.value, dst.value)


@pytest.fixture
def store() -> Iterator[LineageStore]:
    store = LineageStore()
    store.open()
    events = [
        make_event(
            f"c{i}",
            n=i,
            seconds=i,
            status=Status.DEAD_LETTERED,
            reason=Reason.CONFLICT if i % 2 else Reason.MAPPING,
            step="erp.create_order" if i < 4 else "erp.confirm",
        )
        for i in range(1, 7)
    ]
    assert store.write_batch(events).dead_letters_opened == 6
    yield store
    store.close()


def _rows(store: LineageStore) -> list[tuple]:
    return store.read(
        lambda c: c.execute(
            "SELECT event_id, state, state_changed_at, state_changed_by, state_note, attempts "
            "FROM dead_letters ORDER BY event_id"
        ).fetchall()
    )


def _state(store: LineageStore, n: int) -> str:
    row = store.read(
        lambda c: c.execute(
            "SELECT state FROM dead_letters WHERE event_id = ?", [eid(n)]
        ).fetchone()
    )
    assert row is not None
    return str(row[0])


def _move(to: DeadLetterState, ids: list[str], froms: tuple[DeadLetterState, ...]):  # type: ignore[no-untyped-def]
    def fn(c: duckdb.DuckDBPyConnection) -> list[str]:
        return move_dead_letters(c, ids, to, from_states=froms, by="ops", at=AT, note="test")

    return fn


def test_a_legal_move_moves_only_those_in_the_from_states(store: LineageStore) -> None:
    moved = store.write(_move(S.IGNORED, [eid(1), eid(2)], (S.OPEN,)))
    assert sorted(moved) == [eid(1), eid(2)]
    # Ignored ones are not open any more: asking again moves nothing.
    assert store.write(_move(S.REPLAY_REQUESTED, [eid(1), eid(3)], (S.OPEN,))) == [eid(3)]
    assert [_state(store, n) for n in (1, 2, 3, 4)] == [
        "ignored",
        "ignored",
        "replay_requested",
        "open",
    ]


def test_an_illegal_move_is_refused_and_changes_nothing(store: LineageStore) -> None:
    store.write(_move(S.IGNORED, [eid(1)], (S.OPEN,)))
    before = _rows(store)
    # Ignored is final; a batch that asks for one illegal edge among legal ones is
    # refused as a whole, before any row is written.
    with pytest.raises(DeadLetterStateError, match="from ignored to open"):
        store.write(_move(S.OPEN, [eid(1), eid(2)], (S.IGNORED, S.REPLAYING)))
    with pytest.raises(DeadLetterStateError, match="from resolved to open"):
        store.write(_move(S.OPEN, [eid(3)], (S.RESOLVED,)))
    assert _rows(store) == before


def test_transition_of_one_dead_letter(store: LineageStore) -> None:
    def move(n: int, to: DeadLetterState, froms: tuple[DeadLetterState, ...] | None = None):  # type: ignore[no-untyped-def]
        return store.write(
            lambda c: transition(c, eid(n), to, by="ops", at=AT, note="x", from_states=froms)
        )

    assert move(1, S.RESOLVED) is S.OPEN
    assert _state(store, 1) == "resolved"
    assert move(99, S.RESOLVED) is None  # no such dead letter
    before = _rows(store)
    with pytest.raises(DeadLetterStateError, match="from resolved to ignored"):
        move(1, S.IGNORED)
    # Legal in the lifecycle, but not from where the caller allows (an operator may
    # only close an open one).
    move(2, S.REPLAY_REQUESTED)
    before = _rows(store)
    with pytest.raises(DeadLetterStateError, match="is replay_requested; only one that is open"):
        move(2, S.IGNORED, (S.OPEN,))
    assert _rows(store) == before


def test_the_list_filters_and_pages_by_cursor(store: LineageStore) -> None:
    everything = DeadLetterFilter(states=())
    whole = store.dead_letter_page(everything, limit=100)
    assert whole.total == 6 and whole.next_cursor is None
    assert [i["event_id"] for i in whole.items] == [eid(n) for n in (6, 5, 4, 3, 2, 1)]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.dead_letter_page(everything, limit=4, cursor=cursor)
        assert page.total == 6
        seen += [i["event_id"] for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [i["event_id"] for i in whole.items]
    picked = store.dead_letter_page(
        DeadLetterFilter(group=("conflict", "erp.create_order"), correlation_id="c3"), limit=10
    )
    assert [i["event_id"] for i in picked.items] == [eid(3)]
    since = store.dead_letter_page(
        DeadLetterFilter(
            since=make_event(n=900, seconds=4).event_time, steps=frozenset({"erp.confirm"})
        ),
        limit=10,
    )
    assert [i["event_id"] for i in since.items] == [eid(6), eid(5), eid(4)]
    assert store.dead_letter_page(DeadLetterFilter(steps=frozenset()), limit=10).total == 0
    assert (
        store.dead_letter_page(DeadLetterFilter(until=AT - timedelta(days=1)), limit=10).total == 0
    )
