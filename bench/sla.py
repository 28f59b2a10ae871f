"""Benchmark: evaluate every shipped SLA rule over 10 million stored events.

Builds a DuckDB lineage file of synthetic quote-to-cash traffic (30 days, seven events
per transaction, some breaches, retries, duplicates and dead letters), then measures
the engine's first evaluation from a fresh connection (cold) and its incremental
ticks as one more minute of traffic arrives each time. Prints, ends with a
``name=value`` line. Not a test.

    .venv/bin/python bench/sla.py [--events 10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from collector.lineage import DDL
from sla_rules import DuckDBLineage, SlaEngine, load_rules

STEPS = [
    # kind, step, source, target, seconds after closed-won
    ("opportunity.closed_won", "crm.opportunity.closed_won", "crm", "interlock", 0),
    ("order.created", "erp.order.create", "interlock", "erp", 25),
    ("order.confirmed", "erp.order.confirm", "interlock", "erp", 60),
    ("subscription.created", "billing.subscription.create", "interlock", "billing", 90),
    ("entitlement.activated", "support.entitlement.activate", "interlock", "support", 120),
    ("invoice.paid", "billing.invoice.received", "billing", "interlock", 3600),
    ("invoice.posted", "erp.invoice.post", "interlock", "erp", 3630),
]


def _steps_sql() -> str:
    return " UNION ALL ".join(
        f"SELECT {j} AS j, '{k}' AS kind, '{s}' AS step, '{src}' AS source, "
        f"'{dst}' AS target, {off} AS off"
        for j, (k, s, src, dst, off) in enumerate(STEPS)
    )


def populate(con: duckdb.DuckDBPyConnection, transactions: int, start: datetime,
             span_s: float) -> None:  # fmt: skip
    """Stage ``transactions`` x 7 events, closed-won times spread over ``span_s``."""
    con.execute("CREATE TABLE staging AS SELECT * FROM events LIMIT 0")
    con.execute(
        f"""
        INSERT INTO staging (event_id, correlation_id, idempotency_key, source, target, kind,
            step, entity_type, entity_id, status, attempt, event_time, recorded_at,
            ingested_at, amount, currency, customer_id, schema_version)
        SELECT printf('e%012d-%d', i, j), printf('c%012d', i), printf('k%012d-%d', i, j),
               source, target, kind, step, 'x', printf('%d', i),
               CASE WHEN j = 6 AND i % 300 = 0 THEN 'dead_lettered'
                    WHEN j = 3 AND i % 400 = 0 THEN 'retrying'
                    WHEN j = 0 AND i % 250 = 0 THEN 'duplicate'
                    ELSE 'ok' END,
               1, ts, ts, ts + INTERVAL 1 SECOND,
               CAST(500 + (i % 97) * 37 AS DECIMAL(18, 2)), 'USD', printf('001%05d', i % 20000),
               1
        FROM (
            SELECT t.i, s.*,
                   ?::TIMESTAMPTZ + to_seconds(t.i * ?::DOUBLE + s.off
                        + CASE WHEN s.j = 1 AND t.i % 211 = 0 THEN 400 ELSE 0 END) AS ts
            FROM range(?) t(i), ({_steps_sql()}) s
        )
        ORDER BY ts
        """,
        [start, span_s / transactions, transactions],
    )


def arrive(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> int:
    """Move the staged events that happened in ``[lo, hi)`` into the lineage."""
    con.execute(
        "INSERT INTO events SELECT * FROM staging WHERE event_time >= ? AND event_time < ?",
        [lo, hi],
    )
    row = con.execute(
        "SELECT count(*) FROM staging WHERE event_time >= ? AND event_time < ?", [lo, hi]
    ).fetchone()
    return int(row[0]) if row else 0


def build(path: Path, events: int, now: datetime, ticks: int) -> int:
    con = duckdb.connect(str(path))
    con.execute(DDL)
    start = now - timedelta(days=30)
    span = (now - start).total_seconds() + ticks * 60
    populate(con, events // len(STEPS), start, span)
    arrive(con, start, now)
    con.execute(
        """INSERT INTO transactions (correlation_id, order_ref, customer_id, amount, currency,
               state, started_at, updated_at, last_kind, last_system, last_status, event_count,
               failed_count, dead_letter_count)
           SELECT correlation_id, NULL, any_value(customer_id), any_value(amount), 'USD',
                  CASE WHEN max(kind = 'invoice.posted') THEN 'completed'
                       ELSE 'in_progress' END,
                  min(event_time), max(event_time), arg_max(kind, event_time), NULL, 'ok',
                  count(*), 0, 0
           FROM events GROUP BY correlation_id"""
    )
    con.execute(
        """INSERT INTO dead_letters (event_id, correlation_id, step, kind, target, reason,
               error_message, attempts, amount, currency, customer_id, first_failed_at,
               last_failed_at, state, state_changed_at, state_changed_by, state_note,
               resolved_by_event)
           SELECT event_id, correlation_id, step, kind, target, 'downstream_unavailable',
                  NULL, 3, amount, currency, customer_id, event_time, event_time,
                  CASE WHEN hash(event_id) % 10 = 0 THEN 'open' ELSE 'resolved' END,
                  event_time + to_seconds(600 + hash(event_id) % 20000), 'ops', NULL, NULL
           FROM events WHERE status = 'dead_lettered'"""
    )
    row = con.execute("SELECT count(*) FROM events").fetchone()
    con.close()
    return int(row[0]) if row else 0


async def measure(path: Path, now: datetime, ticks: int) -> None:
    clock = {"now": now}
    con = duckdb.connect(str(path))
    # DuckDB's Python client imports pandas on the first parameter bind of a process:
    # a start-up cost of the collector process, not of evaluation. Paid and shown here.
    t = time.perf_counter()
    con.execute("SELECT ?", [1]).fetchall()
    print(f"duckdb client warm-up, once per process: {time.perf_counter() - t:.3f}s")
    lineage = DuckDBLineage(con)
    rules = load_rules()
    engine = SlaEngine(lineage, rules, clock=lambda: clock["now"])
    started = time.perf_counter()
    statuses = await engine.tick()
    cold = time.perf_counter() - started
    total = sum(s.good + s.bad for s in statuses)
    print(f"rules={len(rules)} verdicts_in_30d={total:,}")
    for s in statuses:
        print(f"  {s.rule_id:28s} sli={s.sli:.5f} good={s.good:>9,} bad={s.bad:>7,} "
              f"burn1h={s.burn_rates.get('1h', 0):6.2f} firing={s.firing}")  # fmt: skip
    timings = []
    arrived = []
    for _ in range(ticks):
        # One more minute of traffic arrives, then the clock moves on.
        lo = clock["now"]
        hi = lo + timedelta(minutes=1)

        def step(con: duckdb.DuckDBPyConnection, lo: datetime = lo, hi: datetime = hi) -> int:
            return arrive(con, lo, hi)

        arrived.append(await lineage.write(step))
        clock["now"] = hi
        t = time.perf_counter()
        await engine.tick()
        timings.append(time.perf_counter() - t)
    lineage.close()
    median_ms = statistics.median(timings) * 1000
    print(f"cold_seconds={cold:.3f}")
    print(
        f"incremental_ms median={median_ms:.1f} max={max(timings) * 1000:.1f} "
        f"over {ticks} ticks, ~{statistics.mean(arrived):.0f} new events each"
    )
    print(f"sla_cold_s={cold:.3f} sla_incremental_median_ms={median_ms:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        asyncio.run(measure(args.measure, datetime.fromisoformat(args.now), args.ticks))
        return
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="sla-bench-") as tmp:
        path = Path(tmp) / "lineage.duckdb"
        t = time.perf_counter()
        stored = build(path, args.events, now, args.ticks)
        print(f"built {stored:,} stored events in {time.perf_counter() - t:.1f}s "
              f"({path.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
        # Measure in a fresh process, so nothing from the build is warm but the OS cache.
        argv = [sys.executable, __file__, "--measure", str(path), "--now", now.isoformat(),
                "--ticks", str(args.ticks)]  # fmt: skip
        subprocess.run(argv, check=True)


if __name__ == "__main__":
    main()
