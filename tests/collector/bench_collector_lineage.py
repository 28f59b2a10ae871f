"""Benchmark of the lineage store (not collected by pytest).

Run: ``.venv/bin/python tests/collector/bench_collector_lineage.py [rows]``

Measures ``write_batch`` of 1,000 events with ~1 KB payloads on an empty store and
on one pre-filled with ``rows`` events (correlation IDs scattered, the worst case
for zone maps), with and without the ART index on ``events(correlation_id)``, and
the time of a transaction lookup by correlation ID.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collector.lineage import LineageStore
from tracing import Event, System, new_event_id


def _payload(i: int) -> dict[str, object]:
    return {
        "customer": {"name": f"Customer {i % 97} GmbH", "email": "j***@acme.com"},
        "lines": [
            {"sku": f"SKU-{k}", "quantity": k, "unit_price": "12.50", "description": "x" * 20}
            for k in range(12)
        ],
        "note": "y" * 100,
    }


def _batch(n: int, start: datetime) -> list[Event]:
    return [
        Event(
            correlation_id=f"bench-{i % 300}-{start.timestamp()}",
            idempotency_key=new_event_id(),
            source=System.CRM,
            target=System.ERP,
            kind="order.created",
            step="erp.create_order",
            entity_type="sales_order",
            entity_id=f"SO-{i}",
            event_time=start + timedelta(milliseconds=i),
            amount=Decimal("1250.00"),
            currency="EUR",
            customer_id=f"C-{i % 97}",
            duration_ms=12.0,
            payload=_payload(i),
        )
        for i in range(n)
    ]


def _prefill(store: LineageStore, rows: int) -> None:
    def fill(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            """
            INSERT INTO events (event_id, correlation_id, idempotency_key, source, kind, step,
                entity_type, entity_id, status, attempt, event_time, recorded_at, ingested_at,
                schema_version, payload)
            SELECT uuid()::VARCHAR, 'pre-' || (hash(i) % (? // 8))::VARCHAR, i::VARCHAR, 'crm',
                'order.created', 'erp.create_order', 'sales_order', 'SO-' || i::VARCHAR, 'ok', 1,
                TIMESTAMPTZ '2026-01-01' + to_milliseconds(i), now(), now(), 1, '{}'
            FROM range(?) t(i)
            """,
            [rows, rows],
        )

    store.write(fill)


def _lookup(cid: str) -> Callable[[duckdb.DuckDBPyConnection], object]:
    def fn(conn: duckdb.DuckDBPyConnection) -> object:
        return conn.execute(
            "SELECT event_id, event_time FROM events WHERE correlation_id = ?", [cid]
        ).fetchall()

    return fn


def run(rows: int, *, index: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = LineageStore(Path(tmp) / "bench.duckdb")
        store.open()
        if not index:
            store.write(lambda c: c.execute("DROP INDEX events_correlation"))
        t = time.perf_counter()
        if rows:
            _prefill(store, rows)
        fill_s = time.perf_counter() - t
        base = datetime(2026, 6, 1, tzinfo=UTC)
        store.write_batch(_batch(10, base - timedelta(days=1)))  # warm-up
        batches = [_batch(1000, base + timedelta(minutes=k)) for k in range(10)]
        times = []
        for batch in batches:
            t = time.perf_counter()
            store.write_batch(batch)
            times.append(time.perf_counter() - t)
        lookups = []
        for k in range(20):
            cid = f"pre-{k * 7}" if rows else batches[0][0].correlation_id
            t = time.perf_counter()
            store.get_transaction(cid)
            store.read(_lookup(cid))
            lookups.append(time.perf_counter() - t)
        store.close()
    median = statistics.median(times)
    return {
        "fill_s": fill_s,
        "batch_ms_median": median * 1000,
        "batch_ms_max": max(times) * 1000,
        "events_per_s": 1000 / median,
        "lookup_ms_median": statistics.median(lookups) * 1000,
    }


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    for label, n, index in (
        ("empty, index", 0, True),
        ("empty, no index", 0, False),
        (f"{rows:,} rows, index", rows, True),
        (f"{rows:,} rows, no index", rows, False),
    ):
        result = run(n, index=index)
        print(f"{label:28} " + "  ".join(f"{k}={v:,.1f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
