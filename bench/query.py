"""Lineage lookup latency: one transaction by correlation ID, with many events stored.

    python bench/query.py [--events N] [--lookups K]

Fills a DuckDB lineage file with N events (bulk, straight from Arrow, through
the store's own schema), then times ``LineageStore.get_transaction`` for K random
correlation IDs. Not a test; the last line is ``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_note, peak_rss_mb, summary_line

from collector.lineage import LineageStore

CORRELATIONS = 1_000_000
CHUNK = 500_000


def fill(store: LineageStore, n: int) -> None:
    def insert(con):  # type: ignore[no-untyped-def]
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            con.execute(
                """
                INSERT INTO events (event_id, correlation_id, idempotency_key, source, target,
                    kind, step, entity_type, entity_id, status, attempt, event_time,
                    recorded_at, ingested_at, amount, currency, customer_id, schema_version,
                    payload)
                SELECT 'e-' || i, 'txn-' || lpad((i % $c)::VARCHAR, 7, '0'), 'k-' || i, 'crm',
                    'erp', 'order.created', 'erp.create_order', 'sales_order', 'SO-' || i, 'ok',
                    1, now() - INTERVAL (i % 100000) SECOND, now(), now(), 99.50, 'EUR',
                    'cust-' || (i % 5000), 1, '{"note": "bench"}'
                FROM range($a, $b) AS r(i)
                """,
                {"a": start, "b": start + size, "c": CORRELATIONS},
            )
            con.execute(
                """
                INSERT INTO transactions (correlation_id, state, started_at, updated_at,
                    event_count, failed_count, dead_letter_count)
                SELECT 'txn-' || lpad(i::VARCHAR, 7, '0'), 'in_progress', now(), now(), 0, 0, 0
                FROM range($a, $b) AS r(i)
                ON CONFLICT DO NOTHING
                """,
                {"a": start % CORRELATIONS, "b": min(start % CORRELATIONS + size, CORRELATIONS)},
            )

    store.write(insert)


def main(n: int, lookups: int) -> None:
    print(f"# {n} events over {CORRELATIONS} correlation IDs; {load_note()}")
    with tempfile.TemporaryDirectory() as tmp:
        store = LineageStore(Path(tmp) / "lineage.duckdb")
        store.open()
        started = time.perf_counter()
        fill(store, n)
        print(f"filled in {time.perf_counter() - started:.1f}s")
        rng = random.Random(1)
        ids = [f"txn-{rng.randrange(min(n, CORRELATIONS)):07d}" for _ in range(lookups)]
        store.get_transaction(ids[0])  # warm the catalog and caches once
        times = []
        for cid in ids:
            t = time.perf_counter()
            found = store.get_transaction(cid)
            times.append((time.perf_counter() - t) * 1000)
            assert found is not None
        store.close()
    times.sort()
    p50 = statistics.median(times)
    p95 = times[int(len(times) * 0.95) - 1]
    print(f"get_transaction: p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {times[-1]:.2f} ms")
    print(
        summary_line(
            events=n, lookups=lookups, p50_ms=p50, p95_ms=p95, peak_rss_mb=round(peak_rss_mb())
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    main(args.events, args.lookups)
