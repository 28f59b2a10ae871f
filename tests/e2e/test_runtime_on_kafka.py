"""The same runtime, adapters, flows and collector on Kafka (a real Tansu broker)
instead of the embedded bus: a closed-won deal still completes end to end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from adapters.sandbox import free_port
from adapters.sandbox._landscape import Landscape
from adapters.sandbox._traffic import TrafficGenerator
from adapters.sandbox.kafka import TansuBroker
from adapters.sandbox.plugin import with_landscape
from collector import Role, load_settings
from collector.host import Interlock
from collector.kafka import KafkaBus
from tracing import correlation_id_for

pytestmark = pytest.mark.slow


async def test_quote_to_cash_over_kafka(tmp_path: Path) -> None:
    api_port = free_port()
    with TansuBroker(log_path=tmp_path / "tansu.log") as broker:
        landscape = Landscape(tmp_path, webhook_url=f"http://127.0.0.1:{api_port}/webhooks/stripe")
        ep = await asyncio.to_thread(landscape.start)
        settings = with_landscape(
            load_settings(
                env={
                    "INTERLOCK_KAFKA_BOOTSTRAP": broker.bootstrap,
                    "INTERLOCK_BUS_PARTITIONS": "4",
                    "INTERLOCK_LINEAGE_PATH": str(tmp_path / "lineage.duckdb"),
                    "INTERLOCK_LINEAGE_FLUSH_INTERVAL": "0.05",
                    "INTERLOCK_CRM_POLL_INTERVAL": "0.2",
                    "INTERLOCK_RETRY_BASE_DELAY": "0.05",
                }
            ),
            ep,
        )
        runtime = Interlock(settings, demo=False, api_port=api_port)
        traffic = TrafficGenerator(ep.crm_url, ep.crm_token, ca_file=ep.crm_ca_file, faults=False)
        try:
            info = await runtime.start()
            assert isinstance(runtime.bus, KafkaBus)
            opp = await traffic.create_deal(close="won")
            cid = correlation_id_for("crm", "opportunity", opp)
            deadline = time.monotonic() + 90
            tx: dict = {}
            runtime.app.state.tokens.add("e2e", Role.VIEWER, "e2e-viewer-token")
            auth = {"Authorization": "Bearer e2e-viewer-token"}  # reads need a token
            async with httpx.AsyncClient(base_url=info.api_url, headers=auth) as api:
                while time.monotonic() < deadline:
                    r = await api.get(f"/api/v1/transactions/{cid}")
                    if r.status_code == 200:
                        tx = r.json()
                        if tx["state"] == "completed":
                            break
                    await asyncio.sleep(0.3)
            kinds = [e["kind"] for e in tx.get("events", []) if e["status"] == "ok"]
            assert tx.get("state") == "completed", kinds
            assert kinds.count("order.created") == 1 and kinds.count("invoice.posted") == 1
        finally:
            await traffic.stop()
            await runtime.stop()
            await asyncio.to_thread(landscape.stop)
