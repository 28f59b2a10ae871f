"""How fast every dashboard page first renders with a big lineage behind the control API.

Builds a DuckDB lineage of ``--transactions`` quote-to-cash transactions (1 million by
default, five steps each, spread over 30 days, 1 % dead-lettered at the ERP, 2 % rate
limited by billing), serves it with the real control API (collector + SLA + replay +
explore routers) on loopback, then runs each page with Streamlit's ``AppTest`` against
it with cold caches and prints how long its first render took. All aggregation runs in
the collector; the pages receive a few dozen rows each.

    .venv/bin/python bench/dashboard.py [--transactions 1000000]

Ends with one ``name=value`` line (``dashboard_max_first_render_s`` is the headline).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402  (after the path set-up above)
from _common import load_note, peak_rss_mb, summary_line  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from adapters.billing.plugin import BillingPlugin  # noqa: E402
from adapters.crm.plugin import CrmPlugin  # noqa: E402
from adapters.erp.plugin import ErpPlugin  # noqa: E402
from adapters.flows.plugin import QuoteToCashPlugin  # noqa: E402
from adapters.support.plugin import SupportPlugin  # noqa: E402
from collector import Plugin, Role, Settings, TokenStore  # noqa: E402
from collector.host import Interlock, InterlockThread  # noqa: E402
from collector.lineage import LineageStore  # noqa: E402
from collector.process import free_port, wait_for_http  # noqa: E402
from replay.plugin import ReplayPlugin  # noqa: E402
from sla_rules.plugin import SlaPlugin  # noqa: E402

PAGES = ROOT / "dashboards" / "pages"
TOKEN = "bench-admin-token"
SPREAD = timedelta(days=30)

# One row per (transaction i, step k); columns follow collector._schema's events table.
_EVENTS = """
INSERT INTO events
WITH t AS (SELECT i, ($now::TIMESTAMPTZ - to_microseconds(CAST(($n - 1 - i) * $gap AS BIGINT)))
             AS started FROM range($n) r(i)),
     s AS (SELECT * FROM (VALUES
       (0, 'crm', 'interlock', 'opportunity.closed_won', 'crm.closed_won', 'opportunity', '006'),
       (1, 'interlock', 'erp', 'order.created', 'erp.create_order', 'sales_order', 'SO-'),
       (2, 'interlock', 'billing', 'subscription.created', 'billing.create_subscription',
        'subscription', 'sub_'),
       (3, 'interlock', 'erp', 'invoice.posted', 'erp.post_invoice', 'invoice', 'INV-'),
       (4, 'interlock', 'support', 'case.enriched', 'support.enrich_case', 'ticket', 'T-'))
       s(k, src, tgt, kind, step, etype, prefix)),
     e AS (SELECT t.i, s.*, t.started + to_microseconds(CAST(s.k * 2000000 AS BIGINT)) AS t_at,
             CASE WHEN t.i % 100 = 7 AND s.k = 1 THEN 'dead_lettered'
                  WHEN t.i % 50 = 3 AND s.k = 2 THEN 'retrying' ELSE 'ok' END AS status
           FROM t, s WHERE NOT (t.i % 100 = 7 AND s.k > 1))
SELECT 'ev-' || i || '-' || k, 'txn-' || i,
       CASE WHEN k = 0 THEN NULL WHEN k = 4 THEN 'ev-' || i || '-0'
            ELSE 'ev-' || i || '-' || (k - 1) END,
       lpad(to_hex(i), 32, '0'), lpad(to_hex(k), 16, '0'), 'idem-' || i || '-' || k,
       src, tgt, kind, step, etype, prefix || i, status, 1, t_at, t_at, t_at,
       50 + (i * 7 + k * 13) % 400, CAST(1000 + i % 9000 AS DECIMAL(18, 2)), 'EUR',
       '001C' || (i % 50000), 1, '{"masked": true}',
       CASE status WHEN 'dead_lettered' THEN 'downstream_unavailable'
                   WHEN 'retrying' THEN 'rate_limit' END,
       CASE status WHEN 'dead_lettered' THEN 'ERP answered 503'
                   WHEN 'retrying' THEN '429 Too Many Requests' END,
       CASE WHEN status = 'ok' THEN NULL ELSE true END,
       CASE status WHEN 'dead_lettered' THEN 503 WHEN 'retrying' THEN 429 END,
       NULL, NULL, NULL
FROM e
"""

_TRANSACTIONS = """
INSERT INTO transactions
SELECT 'txn-' || i, 'SO-' || i, '001C' || (i % 50000), CAST(1000 + i % 9000 AS DECIMAL(18, 2)),
       'EUR', CASE WHEN i % 100 = 7 THEN 'dead_lettered' ELSE 'completed' END,
       started, started + to_microseconds(CAST(last_k * 2000000 AS BIGINT)),
       CASE WHEN i % 100 = 7 THEN 'order.created' ELSE 'case.enriched' END, 'interlock',
       CASE WHEN i % 100 = 7 THEN 'dead_lettered' ELSE 'ok' END, last_k + 1, 0,
       CASE WHEN i % 100 = 7 THEN 1 ELSE 0 END, 'Customer ' || (i % 50000) || ' GmbH',
       started + to_microseconds(2000000),
       CASE WHEN i % 100 = 7 THEN NULL ELSE started + to_microseconds(6000000) END,
       started + to_microseconds(CAST(last_k * 2000000 AS BIGINT)), 'ev-' || i || '-' || last_k,
       CASE WHEN i % 100 = 7 THEN 1 ELSE 0 END
FROM (SELECT i, CASE WHEN i % 100 = 7 THEN 1 ELSE 4 END AS last_k,
        ($now::TIMESTAMPTZ - to_microseconds(CAST(($n - 1 - i) * $gap AS BIGINT))) AS started
      FROM range($n) r(i))
"""

_DEAD_LETTERS = """
INSERT INTO dead_letters
SELECT event_id, correlation_id, step, kind, target, error_reason, error_message, attempt,
       amount, currency, customer_id, event_time, event_time, 'open', event_time, 'collector',
       NULL, NULL
FROM events WHERE status = 'dead_lettered'
"""


def build_lineage(path: Path, n: int, now: datetime) -> float:
    """Write ``n`` transactions into a fresh lineage file; returns seconds taken."""
    started = time.perf_counter()
    store = LineageStore(path)
    store.open()
    gap = SPREAD.total_seconds() * 1_000_000 / max(1, n)

    def fill(conn: Any) -> None:
        params = {"n": n, "gap": gap, "now": now}
        conn.execute(_EVENTS, params)
        conn.execute(_TRANSACTIONS, params)
        conn.execute(_DEAD_LETTERS)

    store.write(fill)
    store.close()
    return time.perf_counter() - started


class Api:
    """The control API over the lineage file, on a loopback port, in a thread: the one
    builder with the shipped plug-ins, systems declared but not connected."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = ""
        self.startup_s = 0.0
        self._thread: InterlockThread | None = None

    def start(self) -> Api:
        port = free_port()
        s = Settings()
        settings = s.model_copy(
            update={
                "lineage": s.lineage.model_copy(update={"path": str(self.path)}),
                "bus": s.bus.model_copy(update={"partitions": 2, "journal": False}),
                "api": s.api.model_copy(
                    update={"port": port, "tokens_file": str(self.path.with_suffix(".tokens"))}
                ),
            }
        )
        tokens = TokenStore()
        tokens.add("bench", Role.ADMIN, TOKEN)
        plugins: list[Plugin] = [
            CrmPlugin(connect=False),
            ErpPlugin(connect=False),
            BillingPlugin(connect=False),
            SupportPlugin(connect=False),
            QuoteToCashPlugin(run=False),
            ReplayPlugin(),
            SlaPlugin(interval=3600),
        ]
        interlock = Interlock(settings, plugins, demo=False, api_port=port, tokens=tokens)
        started = time.perf_counter()
        # The SLA engine evaluates once before the host answers.
        self._thread = InterlockThread(interlock, timeout=600).start()
        self.startup_s = time.perf_counter() - started
        self.url = self._thread.url
        wait_for_http(f"{self.url}/healthz", timeout=60)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None


def first_render(page: str, query: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds for a page's first run with cold caches, and a problem if it had one."""
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PAGES / page), default_timeout=120)
    at.session_state["api_token"] = TOKEN
    for key, value in (query or {}).items():
        at.query_params[key] = value
    started = time.perf_counter()
    at.run()
    took = time.perf_counter() - started
    problems = [str(e.value)[:120] for e in at.exception] + [
        str(e.value)[:120] for e in at.error if "control API" in str(e.value)
    ]
    return took, "; ".join(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    args = parser.parse_args()
    # The pages' HTTP calls are the measurement, not something to print.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="interlock-bench-") as tmp:
        path = Path(tmp) / "lineage.duckdb"
        built = build_lineage(path, args.transactions, now)
        size_mb = path.stat().st_size / 1e6
        print(f"lineage: {args.transactions:,} transactions built in {built:.1f} s, "
              f"{size_mb:,.0f} MB")  # fmt: skip
        api = Api(path).start()
        print(f"control API at {api.url}; up in {api.startup_s:.1f} s (SLA's first run included)")
        os.environ["INTERLOCK_API_URL"] = api.url
        os.environ.pop("INTERLOCK_API_TOKEN", None)
        try:
            first_render("01_Overview.py")  # imports pandas/Altair once, as a server would
            runs: list[tuple[str, float, str]] = []
            cases: list[tuple[str, str, dict[str, str] | None]] = [
                (p.stem, p.name, None) for p in sorted(PAGES.glob("[0-9]*.py"))
            ]
            cases.append(("02_Transactions?cid", "02_Transactions.py", {"cid": "txn-7"}))
            for name, page, query in cases:
                took, problem = first_render(page, query)
                runs.append((name, took, problem))
                print(f"  {name:<24} {took:6.2f} s  {problem}")
            search, problem = _search_render(f"SO-{args.transactions // 2 + 1}")
            runs.append(("02_Transactions search", search, problem))
            print(f"  {'02_Transactions search':<24} {search:6.2f} s  {problem}")
        finally:
            api.stop()
    slowest = max(runs, key=lambda r: r[1])
    print(load_note())
    print(f"peak RSS {peak_rss_mb():,.0f} MB (this process: API, lineage and pages)")
    print(
        summary_line(
            transactions=args.transactions,
            pages=len(runs),
            dashboard_max_first_render_s=slowest[1],
            dashboard_slowest=slowest[0].replace(" ", "_"),
            failures=sum(1 for r in runs if r[2]),
        )
    )


def _search_render(text: str) -> tuple[float, str]:
    """The Transactions page after typing an ERP order number into the search box."""
    st.cache_data.clear()
    at = AppTest.from_file(str(PAGES / "02_Transactions.py"), default_timeout=120)
    at.session_state["api_token"] = TOKEN
    at.run()
    started = time.perf_counter()
    at.text_input(key="tx_q").input(text).run()
    took = time.perf_counter() - started
    found = at.dataframe[0].value if at.dataframe else None
    ok = found is not None and len(found) >= 1
    return took, "" if ok else "search found nothing"


if __name__ == "__main__":
    main()
