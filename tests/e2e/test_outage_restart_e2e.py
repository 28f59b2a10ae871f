"""An outage of an hour loses nothing: Interlock stopped, deals close and invoices are paid,
Interlock restarted; every deal ends with exactly one ERP order, one subscription and one
posted invoice. Real Tryton, real localstripe, the CRM and support sandboxes, the runtime.

The hour is simulated: the Salesforce sandbox's clock is set back (``POST /_sandbox/clock``)
so the deals closed during the outage carry modstamps from 60 to 1 minutes before the
restart, beyond the five minutes the change feed used to look back. The first run sees a
few deals through to their subscriptions while billing's webhook deliveries are refused
(the landscape's webhook proxy is down, as Interlock's endpoint is during an outage):
their invoices are paid and their webhooks lost; localstripe never redelivers.

``INTERLOCK_OUTAGE_DEALS`` (default 6) sets how many deals close during the outage; the
deals flow concurrently and the test waits for them all under one deadline.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.billing import BillingAdapter
from adapters.erp import TrytonAdapter
from adapters.sandbox import free_port
from adapters.sandbox._landscape import Landscape, LandscapeEndpoints
from adapters.sandbox._traffic import TrafficGenerator
from adapters.sandbox.plugin import with_landscape
from collector import load_settings
from collector.host import Interlock
from tracing import correlation_id_for

pytestmark = pytest.mark.slow

OUTAGE_DEALS = int(os.environ.get("INTERLOCK_OUTAGE_DEALS", "6"))
#: Deals whose invoices are paid while webhooks cannot reach Interlock, just before the stop.
LOST_WEBHOOK_DEALS = 3
HOUR = 3600.0


def _has(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda tx: any(e["kind"] == kind and e["status"] == "ok" for e in tx["events"])


async def _wait_all(
    api: httpx.AsyncClient,
    opps: list[str],
    done: Callable[[dict[str, Any]], bool],
    within: float,
) -> dict[str, dict[str, Any]]:
    """Every deal's transaction once ``done``; all polled together under one deadline."""
    deadline = time.monotonic() + within
    finished: dict[str, dict[str, Any]] = {}
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pending = [o for o in opps if o not in finished]
        if not pending:
            return finished
        answers = await asyncio.gather(
            *(api.get(f"/api/v1/transactions/{correlation_id_for('crm', 'opportunity', o)}")
              for o in pending)
        )  # fmt: skip
        for opp, answer in zip(pending, answers, strict=True):
            if answer.status_code == 200:
                last[opp] = answer.json()
                if done(last[opp]):
                    finished[opp] = last[opp]
        await asyncio.sleep(0.5)
    missing = [o for o in opps if o not in finished]
    kinds = {
        o: [(e["kind"], e["status"]) for e in last.get(o, {}).get("events", [])]
        for o in missing[:3]
    }
    raise AssertionError(f"{len(missing)} of {len(opps)} deals never got there: {kinds}")


def _runtime(ep: LandscapeEndpoints, workdir: Path, api_port: int, **env: str) -> Interlock:
    settings = with_landscape(
        load_settings(
            env={
                "INTERLOCK_LINEAGE_PATH": str(workdir / "lineage.duckdb"),
                "INTERLOCK_LINEAGE_FLUSH_INTERVAL": "0.05",
                "INTERLOCK_RETRY_MAX_ATTEMPTS": "6",
                "INTERLOCK_RETRY_BASE_DELAY": "0.1",
                "INTERLOCK_RETRY_MAX_DELAY": "1",
                "INTERLOCK_CRM_POLL_INTERVAL": "0.2",
                # Only the catch-up at start reads the events API: it is what is tested.
                "INTERLOCK_BILLING_CATCH_UP_INTERVAL": "3600",
                "INTERLOCK_DEMO_ENABLED": "false",
                **env,
            }
        ),
        ep,
    )
    return Interlock(settings, demo=False, api_port=api_port)


async def test_an_hour_long_outage_loses_no_deal_and_no_paid_invoice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    token = secrets.token_urlsafe(18)
    monkeypatch.setenv("INTERLOCK_TOKENS", f"outage-viewer:viewer:{token}")
    api_port = free_port()
    landscape = Landscape(
        tmp_path / "landscape", webhook_url=f"http://127.0.0.1:{api_port}/webhooks/stripe"
    )
    ep = await asyncio.to_thread(landscape.start)
    assert landscape.webhook_proxy is not None
    crm = httpx.AsyncClient(
        base_url=ep.crm_url, verify=ssl.create_default_context(cafile=ep.crm_ca_file)
    )
    billing = BillingAdapter(ep.direct["billing"], ep.billing_api_key)
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    traffic = TrafficGenerator(
        ep.crm_url, ep.crm_token, ca_file=ep.crm_ca_file, faults=False, seed=11
    )
    runtime: Interlock | None = None

    async def clock(offset: float) -> None:
        (await crm.post("/_sandbox/clock", json={"offset_seconds": offset})).raise_for_status()

    try:
        # -- before the outage: an hour and two minutes ago, by the CRM's clock ------------
        await clock(-HOUR - 120)
        runtime = _runtime(
            ep,
            tmp_path,
            api_port,
            INTERLOCK_CRM_START_LOOKBACK=str(2 * HOUR),
            INTERLOCK_BILLING_START_LOOKBACK=str(2 * HOUR),
        )
        await runtime.start()
        known = {e["id"] for e in await billing.list_events(created_gte=0)}
        landscape.webhook_proxy.set(down=True)
        lost = list(
            await asyncio.gather(
                *(traffic.create_deal(close="won") for _ in range(LOST_WEBHOOK_DEALS))
            )
        )
        await _wait_all(api, lost, _has("subscription.created"), within=90)
        # Every billing event since the proxy went down has had its one delivery refused.
        deadline = time.monotonic() + 30
        while True:
            sent = [e for e in await billing.list_events(created_gte=0) if e["id"] not in known]
            if landscape.webhook_proxy.stats["down"] >= len(sent):
                break
            assert time.monotonic() < deadline, "localstripe never tried its webhooks"
            await asyncio.sleep(0.2)
        assert any(e["type"] == "invoice.payment_succeeded" for e in sent)
        await runtime.stop()
        runtime = None

        # -- the outage: deals close over the hour, by the CRM's clock -----------------------
        during: list[str] = []
        for i in range(OUTAGE_DEALS):
            await clock(-HOUR + i * (HOUR - 60) / max(OUTAGE_DEALS - 1, 1))
            during.append(await traffic.create_deal(close="won"))
        await clock(0)
        landscape.webhook_proxy.clear()

        # -- restart, with the default five-minute look-back for fresh installations -------
        outage_over = time.monotonic()
        runtime = _runtime(ep, tmp_path, api_port)
        await runtime.start()
        deals = lost + during
        txs = await _wait_all(api, deals, _has("invoice.posted"), within=60 + 6 * len(deals))
        caught_up = time.monotonic() - outage_over

        async with TrytonAdapter(
            ep.direct["erp"], ep.erp_database, ep.erp_user, ep.erp_password
        ) as erp:
            subscriptions = [s async for s in billing._list("/v1/subscriptions", {"status": "all"})]
            for opp in deals:
                sales = await erp._rpc.call("model.sale.sale.search", [[["reference", "=", opp]]])
                assert len(sales) == 1, (opp, sales)
                subs = [
                    s for s in subscriptions if (s.get("metadata") or {}).get("order_ref") == opp
                ]
                assert len(subs) == 1, (opp, len(subs))
                invoices = [
                    i async for i in billing._list("/v1/invoices", {"subscription": subs[0]["id"]})
                ]
                posted = await erp._rpc.call(
                    "model.account.invoice.search",
                    [[["reference", "in", [i["id"] for i in invoices]], ["type", "=", "out"],
                      ["state", "in", ["posted", "paid"]]]],
                )  # fmt: skip
                assert len(posted) == 1, (opp, posted)
                kinds = [e["kind"] for e in txs[opp]["events"] if e["status"] == "ok"]
                assert kinds.count("order.created") == 1 and kinds.count("invoice.posted") == 1
        # The lost webhooks' invoices came from the events API, the outage's deals from the
        # stored change-feed position.
        assert runtime.host is not None
        webhooks = runtime.host.shared("billing.webhooks", lambda: None)
        assert webhooks is not None and webhooks.caught_up >= LOST_WEBHOOK_DEALS
        print(
            f"\noutage test: {len(deals)} deals ({LOST_WEBHOOK_DEALS} with lost webhooks, "
            f"{OUTAGE_DEALS} closed during the outage) all posted {caught_up:.1f}s after the "
            f"restart; whole test {time.monotonic() - started:.1f}s"
        )
    finally:
        if runtime is not None:
            await runtime.stop()
        await traffic.stop()
        await api.aclose()
        await crm.aclose()
        await billing.aclose()
        await asyncio.to_thread(landscape.stop)
