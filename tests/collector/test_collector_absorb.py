"""Absorbing a dead collector's lineage file: every event once, summaries as if one store."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _collector_events import make_event

import collector._absorb as absorb
from collector._absorb import remove_lineage_file
from collector.lineage import LineageStore
from tracing import Reason, Status, StoreError, System


def _stream() -> list:
    """Three transactions: one completes, one dead-letters and is replayed, one fails."""
    events = []
    for i, corr in enumerate(("c-1", "c-2", "c-3")):
        events.append(
            make_event(
                corr,
                n=10 * i + 1,
                kind="opportunity.closed_won",
                step="crm.closed_won",
                source=System.CRM,
                entity_type="opportunity",
                entity_id=f"OPP-{i}",
                amount="1200.00",
                currency="USD",
                payload={"customer": {"name": f"Acme {i}"}},
            )
        )
    events.append(make_event("c-1", n=2, seconds=1, kind="invoice.posted", step="erp.post"))
    events.append(
        make_event(
            "c-2",
            n=12,
            seconds=1,
            status=Status.DEAD_LETTERED,
            reason=Reason.DOWNSTREAM_UNAVAILABLE,
            kind="order.create_failed",
            step="erp.create_order",
        )
    )
    events.append(make_event("c-2", n=13, seconds=5, status=Status.OK, step="erp.create_order"))
    events.append(make_event("c-3", n=22, seconds=1, status=Status.FAILED, step="erp.confirm"))
    return events


def _snapshot(store: LineageStore) -> tuple:
    def read(c):  # type: ignore[no-untyped-def]
        events = c.execute("SELECT event_id FROM events ORDER BY event_id").fetchall()
        summaries = c.execute(
            "SELECT correlation_id, order_ref, customer_name, amount, state, event_count, "
            "failed_count, dead_letter_count, open_dead_letters, completed_at, last_event_id "
            "FROM transactions ORDER BY correlation_id"
        ).fetchall()
        dead = c.execute(
            "SELECT event_id, state, resolved_by_event FROM dead_letters ORDER BY event_id"
        ).fetchall()
        return events, summaries, dead

    return store.read(read)


def _open(path: Path) -> LineageStore:
    store = LineageStore(path)
    store.open()
    return store


def test_absorbing_a_sibling_with_an_overlap_stores_every_event_once(tmp_path: Path) -> None:
    events = _stream()
    reference = _open(tmp_path / "reference.db")
    reference.write_batch(events)
    # The dead collector stored the first five; the survivor had stored the last
    # four already (the overlap: one batch in both files).
    dead = _open(tmp_path / "dead.duckdb")
    dead.write_batch(events[:5])
    dead.close()
    survivor = _open(tmp_path / "survivor.duckdb")
    survivor.write_batch(events[3:])

    result = survivor.absorb(tmp_path / "dead.duckdb")

    assert result is not None
    assert (result.events, result.inserted) == (5, 3)
    assert _snapshot(survivor) == _snapshot(reference)
    # Fetching the overlap again after the absorb only meets the dedupe.
    assert survivor.write_batch(events[:5]).inserted == 0


def test_absorbing_twice_changes_nothing(tmp_path: Path) -> None:
    events = _stream()
    dead = _open(tmp_path / "dead.duckdb")
    dead.write_batch(events)
    dead.write_batch(events[:2])  # a redelivery the dead collector counted
    dead.close()
    survivor = _open(tmp_path / "survivor.duckdb")
    assert survivor.absorb(tmp_path / "dead.duckdb") is not None
    once = _snapshot(survivor), survivor.stats()["duplicates_dropped"]
    # A crash before the file was removed: the next assignment absorbs it again.
    again = survivor.absorb(tmp_path / "dead.duckdb")
    assert again is not None and again.inserted == 0
    assert (_snapshot(survivor), survivor.stats()["duplicates_dropped"]) == once
    assert once[1] == 2


def test_an_operators_decision_on_a_dead_letter_is_kept(tmp_path: Path) -> None:
    events = [e for e in _stream() if e.event_id != "00000000-0000-7000-8000-000000000013"]
    dead = _open(tmp_path / "dead.duckdb")
    dead.write_batch(events)
    dead.write(
        lambda c: c.execute(
            "UPDATE dead_letters SET state = 'ignored', state_changed_at = now(), "
            "state_changed_by = 'ops@example.com', state_note = 'customer cancelled'"
        )
    )
    dead.close()
    survivor = _open(tmp_path / "survivor.duckdb")
    survivor.absorb(tmp_path / "dead.duckdb")
    rows = survivor.read(
        lambda c: c.execute(
            "SELECT d.state, d.state_changed_by, t.state FROM dead_letters d "
            "JOIN transactions t USING (correlation_id)"
        ).fetchall()
    )
    assert rows == [("ignored", "ops@example.com", "in_progress")]


def test_a_file_another_process_holds_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "live.duckdb"
    _open(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys
                con = duckdb.connect({str(path)!r})
                print("held", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        survivor = _open(tmp_path / "survivor.duckdb")
        assert survivor.absorb(path) is None
        assert path.exists()
    finally:
        holder.communicate(b"", timeout=10)


def test_a_file_that_is_not_a_lineage_file_is_refused(tmp_path: Path) -> None:
    import duckdb

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE t (x INTEGER)").close()
    survivor = _open(tmp_path / "survivor.duckdb")
    with pytest.raises(StoreError, match="not a lineage file"):
        survivor.absorb(other)
    # The survivor is untouched and still writable.
    assert survivor.write_batch(_stream()).inserted == 7


def test_remove_lineage_file_takes_the_write_ahead_log_too(tmp_path: Path) -> None:
    path = tmp_path / "dead.duckdb"
    path.write_bytes(b"x")
    (tmp_path / "dead.duckdb.wal").write_bytes(b"x")
    remove_lineage_file(path)
    assert list(tmp_path.iterdir()) == []


def test_only_files_of_the_same_group_and_topic_are_absorbed(tmp_path: Path) -> None:
    events = _stream()
    for name, claim in (
        ("unclaimed", None),
        ("other-group", ("billing-collector", "interlock.events")),
        ("other-topic", ("interlock-collector", "other.events")),
        ("ours", ("interlock-collector", "interlock.events")),
    ):
        sibling = _open(tmp_path / f"{name}.duckdb")
        if claim is not None:
            sibling.claim_group(*claim)
        sibling.write_batch(events)
        sibling.close()
    survivor = _open(tmp_path / "survivor.duckdb")
    group = ("interlock-collector", "interlock.events")
    assert survivor.absorb(tmp_path / "unclaimed.duckdb", group=group) is None
    assert survivor.absorb(tmp_path / "other-group.duckdb", group=group) is None
    assert survivor.absorb(tmp_path / "other-topic.duckdb", group=group) is None
    assert _snapshot(survivor)[0] == []
    result = survivor.absorb(tmp_path / "ours.duckdb", group=group)
    assert result is not None and result.inserted == 7
    # The survivor's file now says it holds that group's lineage too.
    claims = survivor.read(lambda c: c.execute("SELECT * FROM consumer_groups").fetchall())
    assert claims == [group]


def test_the_absorb_knows_no_store_class() -> None:
    """``collector._absorb`` takes an ``AbsorbTarget``: it imports nothing of the lineage
    store (not even for type checking), so ``_lineage`` -> ``_absorb`` is one way only."""
    tree = ast.parse(Path(absorb.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }
    assert not any(name.startswith("_lineage") for name in imported), imported
    private = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "store"
        and node.attr.startswith("_")
    }
    assert not private, private


def test_a_sibling_decision_the_lifecycle_forbids_is_not_carried(tmp_path: Path) -> None:
    resolving = "00000000-0000-7000-8000-000000000013"
    events = _stream()
    dead = _open(tmp_path / "dead.duckdb")
    dead.write_batch([e for e in events if e.event_id != resolving])
    dead.write(
        lambda c: c.execute(
            "UPDATE dead_letters SET state = 'ignored', state_changed_at = now(), "
            "state_changed_by = 'ops@example.com'"
        )
    )
    dead.close()
    # The survivor saw the step succeed: the dead letter is resolved here, and
    # resolved -> ignored is not a move the lifecycle allows.
    survivor = _open(tmp_path / "survivor.duckdb")
    survivor.write_batch([e for e in events if e.event_id == resolving])
    survivor.absorb(tmp_path / "dead.duckdb")
    rows = survivor.read(
        lambda c: c.execute("SELECT state, resolved_by_event FROM dead_letters").fetchall()
    )
    assert rows == [("resolved", resolving)]
