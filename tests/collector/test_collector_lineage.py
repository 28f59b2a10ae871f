"""LineageStore: dedupe, transaction summaries and states, dead letters, queries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from _collector_events import T0, eid, make_event

from collector.lineage import AsyncLineage, LineageStore, WriteResult
from tracing import SCHEMA_VERSION, Reason, Status, StoreError, System


@pytest.fixture
def store() -> Iterator[LineageStore]:
    s = LineageStore()
    s.open()
    yield s
    s.close()


def _count(store: LineageStore, sql: str) -> int:
    row = store.read(lambda c: c.execute(sql).fetchone())
    assert row is not None
    return int(row[0])


def test_dedupe_within_and_across_batches(store: LineageStore) -> None:
    a, b = make_event(n=1), make_event(n=2, seconds=1)
    assert store.write_batch([a, b, a, a]) == WriteResult(2, 2, 0, 0)
    assert store.write_batch([b, make_event(n=3, seconds=2), a]) == WriteResult(1, 2, 0, 0)
    assert _count(store, "SELECT count(*) FROM events") == 3
    assert store.stats()["duplicates_dropped"] == 4
    assert store.write_batch([]) == WriteResult(0, 0, 0, 0)


def test_open_and_close_are_safe_twice_and_closed_store_raises(tmp_path: Path) -> None:
    s = LineageStore(tmp_path / "lineage.duckdb")
    s.open()
    s.open()
    s.write_batch([make_event(n=1)])
    s.close()
    s.close()
    with pytest.raises(StoreError, match="not open"):
        s.write_batch([make_event(n=2)])
    with pytest.raises(StoreError, match="not open"):
        s.stats()
    # The file keeps the events and the persisted duplicate counter across a reopen.
    again = LineageStore(tmp_path / "lineage.duckdb")
    again.open()
    assert again.write_batch([make_event(n=1)]) == WriteResult(0, 1, 0, 0)
    assert again.stats()["events_total"] == 1
    assert again.stats()["duplicates_dropped"] == 1
    again.close()


def test_transaction_summary_fields(store: LineageStore) -> None:
    store.write_batch(
        [
            make_event(
                "c1",
                n=2,
                seconds=10,
                kind="order.created",
                source=System.ERP,
                entity_type="sales_order",
                entity_id="SO-9",
                amount="99.999",
                currency="EUR",
                customer_id="C-2",
            ),
            make_event(
                "c1",
                n=1,
                seconds=0,
                kind="opportunity.closed_won",
                source=System.CRM,
                entity_type="opportunity",
                entity_id="006A",
                payload={"customer": {"name": "Acme GmbH"}},
            ),
        ]
    )
    # A later batch with an earlier order event does not win "first seen" fields
    # except order_ref, which follows event time.
    store.write_batch(
        [make_event("c1", n=3, seconds=20, kind="invoice.created", amount="5", customer_id="X")]
    )
    items, total = store.list_transactions()
    assert total == 1
    assert items == [
        {
            "correlation_id": "c1",
            "order_ref": "006A",
            "customer_id": "C-2",
            "customer_name": "Acme GmbH",
            "amount": "100.00",
            "currency": "EUR",
            "state": "in_progress",
            "started_at": "2026-03-01T09:00:00Z",
            "updated_at": "2026-03-01T09:00:20Z",
            "last_kind": "invoice.created",
            "last_system": "erp",
            "last_status": "ok",
            "event_count": 3,
            "failed_count": 0,
            "dead_letter_count": 0,
            "waiting_step": None,
            "waiting_since": None,
            "due_at": None,
        }
    ]


def test_order_ref_follows_event_time_across_batches(store: LineageStore) -> None:
    store.write_batch([make_event("c", n=2, seconds=5, entity_id="SO-LATE")])
    store.write_batch(
        [make_event("c", n=1, seconds=1, entity_type="opportunity", entity_id="006EARLY")]
    )
    assert store.list_transactions()[0][0]["order_ref"] == "006EARLY"
    # last_* stays with the latest event even though it arrived first.
    assert store.list_transactions()[0][0]["last_kind"] == "order.created"


def test_state_rules(store: LineageStore) -> None:
    store.write_batch(
        [
            make_event("done", n=1, kind="invoice.posted"),
            make_event("done", n=2, seconds=1, status=Status.FAILED, kind="payment.failed"),
            make_event("bad", n=3, status=Status.FAILED),
            make_event("retried", n=4, status=Status.FAILED),
            make_event("retried", n=5, seconds=1, kind="order.confirmed"),
            make_event("dl", n=6, kind="invoice.posted"),
            make_event("dl", n=7, seconds=1, status=Status.DEAD_LETTERED, step="billing.sync"),
            # A posted invoice that failed is no completion.
            make_event("notdone", n=8, kind="invoice.posted", status=Status.FAILED),
        ]
    )
    states = {t["correlation_id"]: t["state"] for t in store.list_transactions()[0]}
    assert states == {
        "done": "completed",
        "bad": "failed",
        "retried": "in_progress",
        "dl": "dead_lettered",
        "notdone": "failed",
    }
    assert store.list_transactions(state="failed")[1] == 2
    counts = store.stats()["transactions_by_state"]
    assert counts == {
        "in_progress": 1,
        "completed": 1,
        "on_hold": 0,
        "failed": 2,
        "dead_lettered": 1,
        "stalled": 0,
    }


def test_completion_kinds_are_configurable() -> None:
    s = LineageStore(completion_kinds=frozenset({"order.confirmed"}))
    s.open()
    s.write_batch([make_event("x", n=1, kind="order.confirmed")])
    assert s.get_transaction("x")["state"] == "completed"  # type: ignore[index]
    s.close()


def test_dead_letter_opened_then_auto_resolved(store: LineageStore) -> None:
    fail = make_event("c", n=1, status=Status.FAILED, step="erp.create_order", attempt=1)
    dead = make_event(
        "c",
        n=2,
        seconds=5,
        status=Status.DEAD_LETTERED,
        reason=Reason.CONFLICT,
        attempt=3,
        amount="1250",
        currency="USD",
        customer_id="001A",
        target=System.ERP,
    )
    assert store.write_batch([fail, dead]) == WriteResult(2, 0, 1, 0)
    items, total = store.list_dead_letters()
    assert total == 1
    item = items[0]
    assert item["state_changed_at"] is not None
    item.pop("state_changed_at")
    assert item == {
        "event_id": eid(2),
        "correlation_id": "c",
        "step": "erp.create_order",
        "kind": "order.created",
        "target": "erp",
        "reason": "conflict",
        "error_message": "credit limit exceeded",
        "attempts": 3,
        "amount": "1250.00",
        "currency": "USD",
        "customer_id": "001A",
        "first_failed_at": "2026-03-01T09:00:00Z",
        "last_failed_at": "2026-03-01T09:00:05Z",
        "state": "open",
        "state_changed_by": "collector",
        "state_note": None,
        "resolved_by_event": None,
    }
    assert store.stats()["dead_letters_open"] == 1
    # An ok event of another step, or one earlier than the failure, resolves nothing.
    other = make_event("c", n=3, seconds=6, step="billing.sync")
    earlier = make_event("c", n=4, seconds=4)
    assert store.write_batch([other, earlier]) == WriteResult(2, 0, 0, 0)
    assert store.get_transaction("c")["state"] == "dead_lettered"  # type: ignore[index]
    ok = make_event("c", n=5, seconds=9, status=Status.REPLAYED)
    assert store.write_batch([ok]) == WriteResult(1, 0, 0, 1)
    assert store.list_dead_letters()[1] == 0
    resolved = store.list_dead_letters(state="resolved")[0][0]
    assert resolved["resolved_by_event"] == eid(5)
    assert resolved["state_changed_by"] == "collector"
    summary = store.get_transaction("c")
    assert summary is not None
    assert summary["state"] == "in_progress"
    assert summary["dead_letter_count"] == 1
    assert summary["failed_count"] == 1
    assert store.stats()["dead_letters_open"] == 0


def test_dead_letter_arriving_after_its_resolution_is_resolved_at_once(
    store: LineageStore,
) -> None:
    store.write_batch([make_event("c", n=2, seconds=10)])
    result = store.write_batch([make_event("c", n=1, seconds=1, status=Status.DEAD_LETTERED)])
    assert result == WriteResult(1, 0, 1, 1)
    assert store.get_transaction("c")["state"] == "in_progress"  # type: ignore[index]


def test_write_refreshes_states_after_a_dead_letter_is_ignored(store: LineageStore) -> None:
    store.write_batch([make_event("c", n=1, status=Status.DEAD_LETTERED)])
    assert store.get_transaction("c")["state"] == "dead_lettered"  # type: ignore[index]

    def ignore(conn: duckdb.DuckDBPyConnection) -> int:
        conn.execute("UPDATE dead_letters SET state = 'ignored' WHERE event_id = ?", [eid(1)])
        return 7

    assert store.write(ignore) == 7
    assert store.get_transaction("c")["state"] == "in_progress"  # type: ignore[index]


def test_write_rolls_back_and_translates_duckdb_errors(store: LineageStore) -> None:
    def broken(conn: duckdb.DuckDBPyConnection) -> None:
        conn.execute("CREATE TABLE scratch (x INTEGER)")
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(StoreError, match="no_such_table") as info:
        store.write(broken)
    assert isinstance(info.value.__cause__, duckdb.Error)
    assert (
        _count(store, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'scratch'")
        == 0
    )


def test_get_transaction_events_in_order_with_since_cause(store: LineageStore) -> None:
    first = make_event(
        "c",
        n=1,
        kind="opportunity.closed_won",
        source=System.CRM,
        payload={"email": "jane@acme.com", "api_key": "sk_live_123456"},
    )
    second = make_event("c", n=2, seconds=1.5, causation_id=eid(1), duration_ms=12.5)
    tie = make_event("c", n=3, seconds=1.5, status=Status.FAILED, causation_id=eid(99))
    store.write_batch([tie, second, first])
    found = store.get_transaction("c")
    assert found is not None
    assert [e["event_id"] for e in found["events"]] == [eid(1), eid(2), eid(3)]
    assert found["events"][0] == {
        "event_id": eid(1),
        "correlation_id": "c",
        "causation_id": None,
        "trace_id": "0" * 31 + "1",
        "span_id": "0" * 15 + "1",
        "trace_flags": None,
        "tracestate": "",
        "idempotency_key": "idem-1",
        "source": "crm",
        "target": None,
        "kind": "opportunity.closed_won",
        "step": "erp.create_order",
        "entity_type": "sales_order",
        "entity_id": "SO-1",
        "status": "ok",
        "attempt": 1,
        "event_time": "2026-03-01T09:00:00Z",
        "recorded_at": "2026-03-01T09:00:00Z",
        "duration_ms": None,
        "amount": None,
        "currency": None,
        "customer_id": None,
        "schema_version": SCHEMA_VERSION,
        # An unmasked address reaching the store is masked there.
        "payload": {"email": "j***@acme.com", "api_key": "[REDACTED]"},
        "error": None,
        "replay_of": None,
        "replay_id": None,
        "since_cause_ms": None,
    }
    assert found["events"][1]["since_cause_ms"] == 1500.0
    assert found["events"][1]["duration_ms"] == 12.5
    # A cause that is not stored gives no latency.
    assert found["events"][2]["since_cause_ms"] is None
    assert found["events"][2]["error"] == {
        "reason": "unknown",
        "message": "credit limit exceeded",
        "retriable": False,
        "status_code": 409,
        "error_type": "ConflictError",
    }
    assert store.get_transaction("nope") is None


def test_list_transactions_paging_and_search(store: LineageStore) -> None:
    store.write_batch(
        [
            make_event(f"corr-{i}", n=i, seconds=i, entity_id=f"SO-{i}", customer_id=f"CUST-{i}")
            for i in range(1, 6)
        ]
        + [make_event("corr-3", n=10, seconds=3, entity_type="invoice", entity_id="INV-77")]
        + [make_event("named", n=11, seconds=0, payload={"customer_name": "Globex Corp"})]
    )
    items, total = store.list_transactions(limit=2, offset=1)
    assert total == 6
    assert [t["correlation_id"] for t in items] == ["corr-4", "corr-3"]
    assert [t["correlation_id"] for t in store.list_transactions(q="inv-77")[0]] == ["corr-3"]
    assert [t["correlation_id"] for t in store.list_transactions(q="cust-2")[0]] == ["corr-2"]
    assert [t["correlation_id"] for t in store.list_transactions(q="GLOBEX")[0]] == ["named"]
    # LIKE wildcards are plain characters in q.
    assert store.list_transactions(q="%")[1] == 0
    assert store.list_transactions(state="completed") == ([], 0)


def test_stats(store: LineageStore) -> None:
    empty = store.stats()
    assert empty == {
        "events_total": 0,
        "transactions_total": 0,
        "transactions_by_state": {
            "in_progress": 0,
            "completed": 0,
            "on_hold": 0,
            "failed": 0,
            "dead_lettered": 0,
            "stalled": 0,
        },
        "dead_letters_open": 0,
        "duplicates_dropped": 0,
        "events_by_system": {},
        "events_by_status": {},
        "value_by_state": {},
        "bus_backlog": 0,
        "last_event_at": None,
    }
    store.write_batch(
        [
            make_event("a", n=1, kind="invoice.posted", amount="10.50", source=System.BILLING),
            make_event("b", n=2, seconds=3, amount="2", status=Status.DEAD_LETTERED),
        ]
    )
    stats = store.stats()
    assert stats["events_total"] == 2
    assert stats["events_by_system"] == {"billing": 1, "erp": 1}
    assert stats["events_by_status"] == {"dead_lettered": 1, "ok": 1}
    assert stats["value_by_state"] == {"completed": "10.50", "dead_lettered": "2.00"}
    assert stats["last_event_at"] == "2026-03-01T09:00:03Z"
    assert stats["dead_letters_open"] == 1


def test_reads_run_concurrently_with_writes(store: LineageStore) -> None:
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(50):
                store.stats()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(20):
        store.write_batch([make_event(f"c{i}", n=i + 1)])
    for t in threads:
        t.join()
    assert errors == []
    assert store.stats()["events_total"] == 20


async def test_async_lineage_surface() -> None:
    lineage = AsyncLineage(LineageStore())
    await lineage.open()
    result = await lineage.write_batch([make_event("c", n=1, status=Status.DEAD_LETTERED)])
    assert result == WriteResult(1, 0, 1, 0)
    assert (await lineage.list_transactions())[1] == 1
    assert (await lineage.get_transaction("c"))["state"] == "dead_lettered"  # type: ignore[index]
    assert (await lineage.list_dead_letters(state=None))[1] == 1
    assert (await lineage.stats())["events_total"] == 1
    assert await lineage.read(lambda c: c.execute("SELECT 41 + 1").fetchone()) == (42,)
    await lineage.write(lambda c: c.execute("UPDATE dead_letters SET state = 'ignored'"))
    assert (await lineage.get_transaction("c"))["state"] == "in_progress"  # type: ignore[index]
    await lineage.close()
    await lineage.close()
    with pytest.raises(StoreError, match="closed"):
        await lineage.stats()
    assert T0.tzinfo is not None


def test_a_failed_redo_of_a_dead_letter_does_not_open_a_second_one(store: LineageStore) -> None:
    first = make_event(n=901, status=Status.DEAD_LETTERED, correlation_id="corr-redo")
    redo = make_event(
        n=902, seconds=60, status=Status.DEAD_LETTERED, correlation_id="corr-redo"
    ).model_copy(update={"replay_of": first.event_id, "replay_id": "r-1"})
    store.write_batch([first])
    result = store.write_batch([redo])
    assert result.inserted == 1 and result.dead_letters_opened == 0
    items, total = store.list_dead_letters(state=None)
    assert total == 1 and items[0]["event_id"] == first.event_id


def test_a_read_sees_one_snapshot_while_a_batch_commits() -> None:
    store = LineageStore()
    store.open()
    store.write_batch([make_event("c-1", n=1)])

    def two_queries(cur: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        first = cur.execute("SELECT count(*) FROM events").fetchone()
        # A batch commits on the writer between the two queries of one read.
        store.write_batch([make_event("c-1", n=2, seconds=1)])
        second = cur.execute("SELECT event_count FROM transactions").fetchone()
        assert first is not None and second is not None
        return int(first[0]), int(second[0])

    assert store.read(two_queries) == (1, 1)
    assert store.read(two_queries) == (2, 2)
    store.close()
