"""An ERP outage pages through a real Alertmanager and the page resolves after recovery.

The whole product on real clocks: the landscape (real Tryton behind its fault proxy,
localstripe, the sandboxes), the runtime with its SLA engine and Alertmanager sender,
a real Alertmanager (Debian prometheus-alertmanager) on a free port and a webhook
receiver on 127.0.0.1 standing in for the pager. Nothing is seeded: deals close in the
CRM sandbox, the ERP proxy answers 503 so their orders are dead-lettered, the engine's
fast burn fires, Alertmanager notifies the receiver; the proxy is cleared, new deals
succeed, the engine resolves the alert, and Alertmanager notifies the resolution.

Only the configuration is tuned so this takes seconds: a rule file (``[sla] rules``)
with a one-minute short and two-minute long fast-burn window and a one-second flap
guard, the engine evaluating every half second (``[sla] interval``), the sender
resending every half second, and Alertmanager grouping for a second.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import pytest_asyncio

from adapters.sandbox import free_port
from adapters.sandbox._landscape import Landscape
from adapters.sandbox._traffic import TrafficGenerator
from adapters.sandbox.plugin import with_landscape
from collector import Role, load_settings
from collector.host import Interlock
from tracing import correlation_id_for

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

AM_BINARY = "/usr/bin/prometheus-alertmanager"
RULE_ID = "erp-order-creation-fast"
# The objective leaves a 10 % budget: a burn over 5 is more than half the attempts failing.
RULES = f"""\
version: 1
service: quote-to-cash
slos:
  - id: {RULE_ID}
    name: ERP order creation
    description: Won deals become ERP orders (test windows of minutes).
    objective: 90%
    impact_tier: revenue
    runbook: docs/runbooks/retry-and-replay.md
    indicator: {{kind: success_ratio, step: erp.order.create}}
    window: 1h
    alerting:
      page_fast: {{long: 2m, short: 1m, burn_rate: 5}}
      page_slow: {{long: 30m, short: 3m, burn_rate: 1000}}
      ticket: {{long: 1h, short: 5m, burn_rate: 1000}}
      resolve_after: 1s
      reopen_within: 1s
"""


class Pager:
    """A webhook receiver on 127.0.0.1 that keeps every notification Alertmanager sends."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        pager = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                pager.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/page"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Pager:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def alerts(self, status: str, alert_id: str) -> list[dict[str, Any]]:
        """Every alert with ``alert_id`` notified with ``status`` (firing or resolved)."""
        return [
            alert
            for note in self.notifications
            for alert in note.get("alerts", [])
            if alert["status"] == status and alert["labels"].get("alert_id") == alert_id
        ]


@pytest.fixture(scope="module")
def pager() -> Iterator[Pager]:
    receiver = Pager().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory, pager: Pager) -> Iterator[str]:
    """A real Alertmanager on a free loopback port, paging ``pager`` (resolutions too)."""
    root = tmp_path_factory.mktemp("alertmanager")
    (root / "am.yml").write_text(
        "route:\n"
        "  receiver: pager\n"
        "  group_by: [alert_id]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: pager\n"
        "    webhook_configs:\n"
        f"      - url: {pager.url}\n"
        "        send_resolved: true\n"
    )
    port = free_port()
    log = (root / "am.log").open("wb")
    proc = subprocess.Popen(
        [
            AM_BINARY,
            f"--config.file={root / 'am.yml'}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Alertmanager did not start: {(root / 'am.log').read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


class Stack:
    def __init__(
        self, runtime: Interlock, landscape: Landscape, traffic: TrafficGenerator, api: Any
    ) -> None:
        self.runtime, self.landscape, self.traffic, self.api = runtime, landscape, traffic, api

    async def order_status(self, opp: str) -> str | None:
        cid = correlation_id_for("crm", "opportunity", opp)
        answer = await self.api.get(f"/api/v1/transactions/{cid}")
        if answer.status_code != 200:
            return None
        for event in answer.json()["events"]:
            if event["kind"] == "order.created" and event["status"] in ("ok", "dead_lettered"):
                return str(event["status"])
        return None

    async def alert(self, include_resolved: bool = True) -> dict[str, Any] | None:
        answer = await self.api.get(
            "/api/v1/alerts", params={"include_resolved": str(include_resolved).lower()}
        )
        answer.raise_for_status()
        mine = [a for a in answer.json()["alerts"] if a["rule_id"] == RULE_ID]
        return mine[0] if mine else None


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, alertmanager: str
) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("alert-landscape")
    rules = workdir / "fast-rules.yaml"
    rules.write_text(RULES)
    api_port = free_port()
    landscape = Landscape(workdir, webhook_url=f"http://127.0.0.1:{api_port}/webhooks/stripe")
    ep = await asyncio.to_thread(landscape.start)
    runtime: Interlock | None = None
    traffic = TrafficGenerator(
        ep.crm_url, ep.crm_token, ca_file=ep.crm_ca_file, faults=False, seed=16
    )
    try:
        settings = with_landscape(
            load_settings(
                env={
                    "INTERLOCK_LINEAGE_PATH": str(workdir / "lineage.duckdb"),
                    "INTERLOCK_LINEAGE_FLUSH_INTERVAL": "0.05",
                    "INTERLOCK_RETRY_MAX_ATTEMPTS": "2",
                    "INTERLOCK_RETRY_BASE_DELAY": "0.05",
                    "INTERLOCK_RETRY_MAX_DELAY": "0.1",
                    "INTERLOCK_CRM_POLL_INTERVAL": "0.2",
                    "INTERLOCK_DEMO_ENABLED": "false",
                    "INTERLOCK_SLA_RULES": str(rules),
                    "INTERLOCK_SLA_INTERVAL": "0.5",
                    "INTERLOCK_ALERTS_ALERTMANAGER_URL": alertmanager,
                    "INTERLOCK_ALERTS_RESEND_INTERVAL": "0.5",
                    "INTERLOCK_ALERTS_DASHBOARD_URL": "http://dash.example:8501",
                }
            ),
            ep,
        )
        runtime = Interlock(settings, demo=False, api_port=api_port)
        info = await runtime.start()
        runtime.app.state.tokens.add("pager-test", Role.VIEWER, "pager-viewer-token")
        async with httpx.AsyncClient(
            base_url=info.api_url,
            timeout=10,
            headers={"Authorization": "Bearer pager-viewer-token"},
        ) as api:
            yield Stack(runtime, landscape, traffic, api)
    finally:
        await traffic.stop()
        if runtime is not None:
            await runtime.stop()
        await asyncio.to_thread(landscape.stop)


async def until(check: Callable[[], Awaitable[Any]], what: str, within: float) -> Any:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


async def am_alerts(url: str, alert_id: str) -> list[dict[str, Any]]:
    """The alerts Alertmanager's API holds for ``alert_id`` (active ones: the default)."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        answer = await client.get("/api/v2/alerts")
    answer.raise_for_status()
    return [a for a in answer.json() if a["labels"].get("alert_id") == alert_id]


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_an_erp_outage_pages_through_alertmanager_and_resolves_after_recovery(
    stack: Stack, alertmanager: str, pager: Pager
) -> None:
    started = time.monotonic()
    proxy = stack.landscape.erp_proxy
    assert proxy is not None
    # A healthy deal first: the path works and the rule has a good verdict.
    first = await stack.traffic.create_deal(close="won")
    assert await until(lambda: stack.order_status(first), "the first order", 60) == "ok"
    assert await stack.alert() is None

    # -- the ERP goes down: orders are dead-lettered and the fast burn pages ------------
    proxy.set(down=True)
    try:
        lost = [await stack.traffic.create_deal(close="won") for _ in range(2)]
        for opp in lost:
            status = await until(lambda opp=opp: stack.order_status(opp), "a dead letter", 60)
            assert status == "dead_lettered"
        alert = await until(stack.alert, "the SLA engine to raise the alert", 30)
        assert alert["state"] == "firing" and alert["condition"] == "page_fast"
        alert_id = alert["alert_id"]
        fired = time.monotonic()
        [seen] = await until(
            lambda: am_alerts(alertmanager, alert_id), "the alert in Alertmanager", 15
        )
        paged = await until(
            lambda: asyncio.sleep(0, pager.alerts("firing", alert_id)), "the page", 15
        )
        paged_after = time.monotonic() - fired
    finally:
        proxy.clear()

    assert seen["status"]["state"] == "active"
    expected = {
        "alertname": "InterlockSlaPageFast",
        "rule": RULE_ID,
        "service": "quote-to-cash",
        "severity": "page",
        "impact_tier": "revenue",
        "burn_condition": "page_fast",
        "alert_id": alert_id,
    }
    assert seen["labels"] == expected
    notes = seen["annotations"]
    assert float(notes["value_at_risk"]) > 0 and notes["currency"]
    assert int(notes["customers_affected"]) >= 1
    assert notes["runbook_url"].startswith("http://dash.example:8501/Runbooks?name=")
    assert notes["dashboard_url"] == f"http://dash.example:8501/Alerts?alert={alert_id}"
    # The pager got the same alert, with what a receiver routes on.
    assert paged[0]["labels"] == expected
    assert paged[0]["annotations"]["runbook_url"] == notes["runbook_url"]

    # -- the ERP is back: new deals succeed until the burn drops and the alert resolves ---
    recovered = time.monotonic()
    resolved: dict[str, Any] | None = None
    deals = 0
    while resolved is None:
        assert time.monotonic() - recovered < 120, "the alert never resolved after recovery"
        opp = await stack.traffic.create_deal(close="won")
        deals += 1
        assert await until(lambda opp=opp: stack.order_status(opp), "an order", 60) == "ok"
        current = await stack.alert()
        assert current is not None and current["alert_id"] == alert_id
        if current["state"] == "resolved":
            resolved = current
    assert resolved["resolved_at"]

    # Alertmanager drops it from its active alerts and tells the pager it resolved, with
    # the end Interlock recorded (not the expiry of the last resend, a minute ahead).
    await until(
        lambda: _gone(alertmanager, alert_id),
        "Alertmanager to resolve the alert",
        15,
    )
    [note] = await until(
        lambda: asyncio.sleep(0, pager.alerts("resolved", alert_id)),
        "the resolved notification",
        15,
    )
    ends = _when(note["endsAt"])
    assert abs((ends - _when(resolved["resolved_at"])).total_seconds()) < 1.0
    print(
        f"\nalert delivery: paged {paged_after:.1f}s after the alert fired; resolved after "
        f"{deals} good deals, {time.monotonic() - recovered:.1f}s after recovery; "
        f"whole test {time.monotonic() - started:.1f}s"
    )


async def _gone(url: str, alert_id: str) -> bool:
    return not await am_alerts(url, alert_id)
