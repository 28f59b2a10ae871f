"""Benchmark: one reconciliation of N transactions per period against the real systems.

Starts the demo landscape's systems (Tryton, localstripe, the Salesforce and Zendesk
sandboxes), seeds N won deals that every system holds exactly once (a CRM account and
opportunity, an ERP party, confirmed sale and posted invoice, a billing customer,
subscription and paid invoice, a support organization and entitlement ticket), then
measures in one process:

- raw: paged reads of the same records from each system, with plain httpx (the
  floor any reconciliation over these APIs pays);
- reconcile: ``Reconciler.run`` over the last day (the adapters' list calls, the
  comparison, the run stored in a lineage), which must find nothing.

Seeding is not the measured figure (printed anyway): the CRM through Salesforce's
sObject Collections (200 records a call), support and billing through their APIs
with a few calls in flight, the ERP by one template order made through the adapter
and copied in SQL in Tryton's SQLite file. Ends with a ``name=value`` line. Not a test.

    .venv/bin/python bench/reconcile.py [--transactions 1000]

The target is 20,000 transactions per period; the default is 1,000 because localstripe's
creates and list pages grow with everything it holds (docs/performance.md): seeding and
reading 20,000 there takes hours, so ``make bench`` would never end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sqlite3
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

from adapters import Customer, Invoice, OrderLine, SalesOrder
from adapters.billing import BillingAdapter
from adapters.crm import SalesforceAdapter
from adapters.erp import TrytonAdapter
from adapters.flows import entitlement_key
from adapters.reconcile import Reconciler, period_for, read_holdings
from adapters.sandbox._landscape import Landscape, LandscapeEndpoints
from adapters.support import ZendeskAdapter
from collector import ANONYMOUS
from collector.lineage import AsyncLineage, LineageStore

sys.path.insert(0, str(Path(__file__).parent))
from _common import load_note, peak_rss_mb, summary_line

T = TypeVar("T")
AMOUNT = Decimal("1000.00")
PLAN = "bench-plan-usd-100000-month"
SF_API = "/services/data/v60.0"


async def gather_limited(n: int, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``calls`` with at most ``n`` in flight; results in order."""
    gate = asyncio.Semaphore(n)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _ok(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return r.json()


# -- seeding --------------------------------------------------------------------


async def seed_crm(ep: LandscapeEndpoints, n: int) -> list[tuple[str, str]]:
    """``n`` accounts, each with one closed-won opportunity today: ``[(account, opp)]``."""
    verify = ssl.create_default_context(cafile=ep.crm_ca_file)
    headers = {"Authorization": f"Bearer {ep.crm_token}"}
    async with httpx.AsyncClient(
        base_url=ep.crm_url, verify=verify, headers=headers, timeout=120
    ) as client:

        async def create(records: list[dict[str, Any]]) -> list[str]:
            r = await client.post(f"{SF_API}/composite/sobjects", json={"records": records})
            return [str(x["id"]) for x in _ok(r)]

        async def many(records: list[dict[str, Any]]) -> list[str]:
            chunks = [records[i : i + 200] for i in range(0, len(records), 200)]
            parts = await gather_limited(4, [functools.partial(create, c) for c in chunks])
            return [i for part in parts for i in part]

        accounts = await many(
            [{"attributes": {"type": "Account"}, "Name": f"Bench Co {i:06d}"} for i in range(n)]
        )
        today = date.today().isoformat()
        opps = await many(
            [
                {
                    "attributes": {"type": "Opportunity"},
                    "Name": f"Bench deal {i:06d}",
                    "AccountId": acc,
                    "Amount": float(AMOUNT),
                    "CurrencyIsoCode": "USD",
                    "CloseDate": today,
                    "StageName": "Closed Won",
                }
                for i, acc in enumerate(accounts)
            ]
        )
    return list(zip(accounts, opps, strict=True))


async def seed_support(ep: LandscapeEndpoints, deals: list[tuple[str, str]]) -> None:
    auth = httpx.BasicAuth(f"{ep.support_email}/token", ep.support_token)
    async with httpx.AsyncClient(base_url=ep.support_url, auth=auth, timeout=120) as client:

        async def one(acc: str, opp: str) -> None:
            org = _ok(
                await client.post(
                    "/api/v2/organizations.json",
                    json={"organization": {"name": f"Org {acc}", "external_id": acc}},
                )
            )["organization"]["id"]
            ticket = {
                "subject": f"Onboarding {opp}",
                "comment": {"body": "Please schedule onboarding."},
                "external_id": entitlement_key(opp),
                "organization_id": org,
            }
            _ok(await client.post("/api/v2/tickets.json", json={"ticket": ticket}))

        await gather_limited(8, [functools.partial(one, a, o) for a, o in deals])


async def seed_billing(ep: LandscapeEndpoints, deals: list[tuple[str, str]]) -> list[str]:
    """A customer with a card and one paid subscription per deal: the invoice IDs."""
    auth = httpx.BasicAuth(ep.billing_api_key, "")
    async with httpx.AsyncClient(base_url=ep.direct["billing"], auth=auth, timeout=120) as client:
        plan = {
            "id": PLAN,
            "amount": "100000",
            "currency": "usd",
            "interval": "month",
            "product[name]": "Bench plan",
        }
        _ok(await client.post("/v1/plans", data=plan))

        async def one(acc: str, opp: str) -> str:
            customer = _ok(
                await client.post(
                    "/v1/customers",
                    data={
                        "name": f"Bench {acc}",
                        "metadata[interlock_customer_id]": acc,
                        "payment_method": "pm_card_visa",
                        "invoice_settings[default_payment_method]": "pm_card_visa",
                    },
                )
            )
            sub = _ok(
                await client.post(
                    "/v1/subscriptions",
                    data={
                        "customer": customer["id"],
                        "items[0][plan]": PLAN,
                        "metadata[order_ref]": opp,
                        "metadata[customer_id]": acc,
                        # As the adapter makes them: item metadata reaches invoice lines.
                        "items[0][metadata][order_ref]": opp,
                        "items[0][metadata][customer_id]": acc,
                    },
                )
            )
            invoice = sub.get("latest_invoice")
            return str(invoice["id"] if isinstance(invoice, dict) else invoice)

        return await gather_limited(8, [functools.partial(one, a, o) for a, o in deals])


async def seed_erp(
    erp: TrytonAdapter, database: Path, deals: list[tuple[str, str]], invoices: list[str]
) -> None:
    """One order made as quote-to-cash makes it, then copied in SQL for every deal."""
    acc0, opp0 = deals[0]
    customer = Customer(customer_id=acc0, name="Bench Co template")
    party = await erp.ensure_party(customer)
    order = SalesOrder(
        order_ref=opp0,
        customer=customer,
        currency="USD",
        lines=[OrderLine(sku="PLAT-ENT", quantity=Decimal(1), unit_price=AMOUNT)],
    )
    sale, _ = await erp.create_sale(order, idempotency_key=f"erp.order.create:{opp0}")
    sale = await erp.confirm_sale(sale.id)
    posted, _ = await erp.post_invoice(
        Invoice(
            invoice_id=invoices[0],
            customer_id=acc0,
            currency="USD",
            amount_due=AMOUNT,
            status="paid",
        ),
        party_id=party,
        description=f"Subscription invoice for {opp0}",
        idempotency_key=f"erp.invoice.post:{invoices[0]}",
    )
    await asyncio.to_thread(_copy_rows, database, party, sale.id, posted.id, deals, invoices)


def _copy_rows(
    database: Path,
    party: int,
    sale: int,
    invoice: int,
    deals: list[tuple[str, str]],
    invoices: list[str],
) -> None:
    con = sqlite3.connect(database, timeout=60)
    try:
        with con:
            first = _copy(con, "party_party", party, [{"code": acc} for acc, _ in deals[1:]])
            parties = [party, *range(first, first + len(deals) - 1)]
            _copy(
                con,
                "sale_sale",
                sale,
                [
                    {"reference": opp, "party": pid, "number": f"BS{i:06d}"}
                    for i, ((_, opp), pid) in enumerate(zip(deals, parties, strict=True))
                    if i
                ],
            )
            _copy(
                con,
                "account_invoice",
                invoice,
                [
                    {"reference": ref, "party": pid, "number": f"BI{i:06d}"}
                    for i, (ref, pid) in enumerate(zip(invoices, parties, strict=True))
                    if i
                ],
            )
    finally:
        con.close()


def _copy(con: sqlite3.Connection, table: str, row_id: int, changes: list[dict[str, Any]]) -> int:
    """Copies of row ``row_id`` with ``changes``; the first new ID (IDs are sequential)."""
    columns = [c[1] for c in con.execute(f"PRAGMA table_info({table})") if c[1] != "id"]
    (template,) = con.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE id = ?", [row_id]
    ).fetchall()
    base = dict(zip(columns, template, strict=True))
    (top,) = con.execute(f"SELECT max(id) FROM {table}").fetchone()
    con.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [[{**base, **c}[k] for k in columns] for c in changes],
    )
    return int(top) + 1


# -- raw paged reads ----------------------------------------------------------------


async def raw_reads(ep: LandscapeEndpoints, erp: TrytonAdapter) -> dict[str, float]:
    """Every record the reconciliation reads, paged with plain httpx (and Tryton's RPC)."""
    out: dict[str, float] = {}

    async def crm() -> None:
        verify = ssl.create_default_context(cafile=ep.crm_ca_file)
        headers = {"Authorization": f"Bearer {ep.crm_token}"}
        async with httpx.AsyncClient(
            base_url=ep.crm_url, verify=verify, headers=headers, timeout=120
        ) as client:
            t = time.perf_counter()
            q = (
                "SELECT Id, AccountId, Account.Name, Amount, CurrencyIsoCode, CloseDate "
                "FROM Opportunity WHERE IsWon = true"
            )
            page = _ok(await client.get(f"{SF_API}/query/", params={"q": q}))
            while page.get("nextRecordsUrl"):
                page = _ok(await client.get(page["nextRecordsUrl"]))
            out["crm"] = time.perf_counter() - t

    async def billing() -> None:
        auth = httpx.BasicAuth(ep.billing_api_key, "")
        async with httpx.AsyncClient(
            base_url=ep.direct["billing"], auth=auth, timeout=120
        ) as client:
            t = time.perf_counter()
            for path in ("/v1/subscriptions", "/v1/invoices", "/v1/customers"):
                after = None
                while True:
                    params: dict[str, Any] = {"limit": 100, "status": "all"}
                    if path != "/v1/subscriptions":
                        params.pop("status")
                    if after:
                        params["starting_after"] = after
                    page = _ok(await client.get(path, params=params))
                    if not page["data"] or not page.get("has_more"):
                        break
                    after = page["data"][-1]["id"]
            out["billing"] = time.perf_counter() - t

    async def support() -> None:
        auth = httpx.BasicAuth(f"{ep.support_email}/token", ep.support_token)
        async with httpx.AsyncClient(base_url=ep.support_url, auth=auth, timeout=120) as client:
            t = time.perf_counter()
            for path in ("/api/v2/tickets.json", "/api/v2/organizations.json"):
                params = {"page[size]": "100"}
                while True:
                    page = _ok(await client.get(path, params=params))
                    if not (page.get("meta") or {}).get("has_more"):
                        break
                    params = {"page[size]": "100", "page[after]": page["meta"]["after_cursor"]}
            out["support"] = time.perf_counter() - t

    async def erp_reads() -> None:
        t = time.perf_counter()
        for model, fields in (
            ("sale.sale", ["reference", "state", "total_amount"]),
            ("account.invoice", ["reference", "state", "total_amount"]),
            ("party.party", ["code"]),
        ):
            offset = 0
            while True:
                page = await erp.rpc.call(
                    f"model.{model}.search_read", [], offset, 500, [["id", "ASC"]], fields
                )
                offset += len(page)
                if len(page) < 500:
                    break
        out["erp"] = time.perf_counter() - t

    t = time.perf_counter()
    await crm()  # the CRM first, as a run reads it
    await asyncio.gather(billing(), support(), erp_reads())
    out["total"] = time.perf_counter() - t
    return out


# -- main -----------------------------------------------------------------------------


async def bench(n: int, workdir: Path) -> None:
    landscape = Landscape(workdir)
    t = time.perf_counter()
    ep = await asyncio.to_thread(landscape.start)
    print(f"systems started in {time.perf_counter() - t:.1f}s; {load_note()}")
    erp = TrytonAdapter(ep.direct["erp"], ep.erp_database, ep.erp_user, ep.erp_password)
    crm = SalesforceAdapter(ep.crm_url, ep.crm_token, verify=ep.crm_ca_file, timeout=120)
    billing = BillingAdapter(ep.direct["billing"], ep.billing_api_key, timeout=120)
    support = ZendeskAdapter(ep.support_url, ep.support_email, ep.support_token, timeout=120)
    lineage = AsyncLineage(LineageStore())
    try:
        seeded: dict[str, float] = {}
        t = time.perf_counter()
        deals = await seed_crm(ep, n)
        seeded["crm"] = time.perf_counter() - t
        t = time.perf_counter()
        invoices, _ = await asyncio.gather(seed_billing(ep, deals), seed_support(ep, deals))
        seeded["billing+support"] = time.perf_counter() - t
        t = time.perf_counter()
        database = workdir / "tryton" / "data" / f"{ep.erp_database}.sqlite"
        await seed_erp(erp, database, deals, invoices)
        seeded["erp"] = time.perf_counter() - t
        print(
            f"seeded {n:,} transactions: " + ", ".join(f"{k} {v:.1f}s" for k, v in seeded.items())
        )

        raw = await raw_reads(ep, erp)
        print("raw paged reads: " + ", ".join(f"{k} {v:.2f}s" for k, v in raw.items()))

        async def read(period: Any) -> Any:
            return await read_holdings(period, crm=crm, erp=erp, billing=billing, support=support)

        await lineage.open()
        reconciler = Reconciler(lineage, read)
        await reconciler.start()
        t = time.perf_counter()
        run = await reconciler.run(period_for("day"), trigger="bench", by=ANONYMOUS)
        elapsed = time.perf_counter() - t
        await reconciler.stop()
        if run["status"] != "done":
            raise SystemExit(f"the run failed: {run.get('error')}")
        print(f"reconcile: {elapsed:.2f}s, status {run['status']}, counts {run['counts']}")
        print("  per system: " + ", ".join(f"{k} {v:.2f}s" for k, v in run["timings"].items()))
        print(f"  discrepancies: {run['discrepancies']} (a clean landscape: 0 expected)")
        kinds: dict[str, int] = {}
        for item in run["items"]:
            kinds[f"{item['check']}/{item['kind']}"] = (
                kinds.get(f"{item['check']}/{item['kind']}", 0) + 1
            )
        if kinds:
            print(f"  by check: {kinds}")
        print(f"peak RSS {peak_rss_mb():.0f} MB; {load_note()}")
        print(
            summary_line(
                transactions=n,
                reconcile_s=elapsed,
                raw_reads_s=raw["total"],
                discrepancies=int(run["discrepancies"]),
                target_s=60,
            )
        )
    finally:
        await lineage.close()
        for adapter in (erp, crm, billing, support):
            await adapter.aclose()
        await asyncio.to_thread(landscape.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transactions", type=int, default=1_000)
    args = parser.parse_args()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        asyncio.run(bench(args.transactions, Path(tmp)))
    print(
        f"started {started:%H:%M:%S} UTC, took {(datetime.now(UTC) - started).total_seconds():.0f}s"
    )


if __name__ == "__main__":
    main()
