"""Alert delivery through a real Alertmanager (Debian prometheus-alertmanager).

An ERP outage (invoice postings dead-lettered) fires the fast-burn page; the sender
posts it to Alertmanager with routable labels and business annotations, an ack in
Interlock becomes a silence, recovery resolves it there, a silence made in
Alertmanager shows as acknowledged, and an unreachable Alertmanager only counts
failures.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from _sla_helpers import Builder, FakeClock
from prometheus_client import CollectorRegistry

from collector.process import free_port
from sla_rules import (
    AlertmanagerClient,
    AlertmanagerSender,
    Rule,
    SlaEngine,
    load_rules,
    prometheus_rules,
)

AM_BINARY = "/usr/bin/prometheus-alertmanager"
SHIPPED = {rule.id: rule for rule in load_rules()}["invoice-sync-success"]
# The shipped invoice SLO paging on the fast burn only, so recovery resolves in minutes.
INVOICE = Rule.model_validate(
    {
        **SHIPPED.model_dump(),
        "alerting": {
            "page_slow": {"long": "6h", "short": "30m", "burn_rate": 1000},
            "ticket": {"long": "3d", "short": "6h", "burn_rate": 1000},
        },
    }
)
m = timedelta(minutes=1)
CONFIG = """\
route:
  receiver: nobody
  group_wait: 1s
receivers:
  - name: nobody
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager on a free loopback port with its own config and storage."""
    root = tmp_path_factory.mktemp("alertmanager")
    (root / "am.yml").write_text(CONFIG)
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
                raise RuntimeError(f"Alertmanager did not start: {Path(log.name).read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


async def until(check: Callable[[], Awaitable[Any]], what: str, within: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def postings(build: Builder, start: datetime, minutes: int, bad_every: int | None, prefix: str):
    """One ERP invoice posting a minute; every ``bad_every``-th dead-lettered (ERP down)."""
    for i in range(minutes):
        bad = bad_every is not None and i % bad_every == 0
        build.event("invoice.posted", start + i * m, corr=f"{prefix}{i}", step="erp.invoice.post",
                    target="erp", status="dead_lettered" if bad else "ok", amount=2500.0,
                    customer=f"cust{i % 7}")  # fmt: skip


def recent_minute(minutes_ago: int) -> datetime:
    """A whole minute in the recent past: the engine's clock stays behind Alertmanager's."""
    return datetime.now(UTC).replace(second=0, microsecond=0) - minutes_ago * m


async def am_alert(url: str, alert_id: str) -> dict[str, Any] | None:
    async with AlertmanagerClient(url) as client:
        alerts = await client.alerts()
    for seen in alerts:
        if seen["labels"].get("alert_id") == alert_id:
            return seen
    return None


async def outage(lineage, build: Builder, clock: FakeClock) -> SlaEngine:
    postings(build, clock.now - 60 * m, 60, 2, "down")  # half the postings fail for an hour
    engine = SlaEngine(lineage, [INVOICE], clock=clock)
    [status] = await engine.tick()
    assert status.condition == "page_fast"
    return engine


async def test_outage_pages_acks_to_silence_and_resolves(alertmanager, lineage, build):
    clock = FakeClock(recent_minute(40))
    engine = await outage(lineage, build, clock)
    [alert] = engine.alerts()
    sender = AlertmanagerSender(
        engine, alertmanager, interval=0.2, dashboard_url="http://dash.example:8501"
    )
    await sender.start()
    try:
        seen = await until(lambda: am_alert(alertmanager, alert.alert_id), "the page")
        assert seen["labels"] == {
            "alertname": "InterlockSlaPageFast",
            "rule": "invoice-sync-success",
            "severity": "page",
            "impact_tier": "cash_collection",
            "service": "quote-to-cash",
            "burn_condition": "page_fast",
            "alert_id": alert.alert_id,
        }
        # The same names and labels as the exported Prometheus rule for this burn.
        [exported] = [
            r
            for g in prometheus_rules([INVOICE], dashboard_url="http://dash.example:8501")["groups"]
            for r in g["rules"]
            if r.get("alert") == "InterlockSlaPageFast"
        ]
        assert exported["labels"].items() <= seen["labels"].items()
        assert exported["annotations"]["runbook_url"] == seen["annotations"]["runbook_url"]
        notes = seen["annotations"]
        assert notes["value_at_risk"] == f"{30 * 2500:.2f}" and notes["currency"] == "USD"
        assert notes["customers_affected"] == str(alert.customers_affected) != "0"
        assert notes["summary"] == alert.summary
        assert notes["runbook_url"].startswith("http://dash.example:8501/Runbooks?name=")
        assert seen["generatorURL"] == notes["dashboard_url"]
        assert notes["dashboard_url"] == f"http://dash.example:8501/Alerts?alert={alert.alert_id}"
        assert seen["status"]["state"] == "active"
        assert sender.failures == 0

        # Acknowledged in Interlock: Alertmanager silences it, by the same person.
        await engine.acknowledge(alert.alert_id, "olivia", "ERP vendor called")

        async def silenced() -> dict[str, Any] | None:
            found = await am_alert(alertmanager, alert.alert_id)
            return found if found and found["status"]["silencedBy"] else None

        seen = await until(silenced, "the silence")
        assert seen["status"]["state"] == "suppressed"
        async with AlertmanagerClient(alertmanager) as client:
            silence = await client.silence(seen["status"]["silencedBy"][0])
        assert silence["createdBy"] == "olivia" and "ERP vendor called" in silence["comment"]
        assert silence["matchers"] == [
            {"name": "alert_id", "value": alert.alert_id, "isRegex": False, "isEqual": True}
        ]

        # The ERP recovers: the engine resolves the alert and Alertmanager drops it now,
        # not when its last endsAt (a minute ahead) would have run out.
        postings(build, clock.now, 20, None, "up")
        clock.advance(minutes=6)
        await engine.tick()
        clock.advance(minutes=10)
        await engine.tick()
        assert engine.alerts(include_resolved=True)[0].state == "resolved"

        async def gone() -> bool:
            return await am_alert(alertmanager, alert.alert_id) is None

        await until(gone, "the resolved alert to leave Alertmanager", within=20)
        assert sender.failures == 0 and sender.silences_created == 1
    finally:
        await sender.stop()


async def test_silence_in_alertmanager_shows_as_acknowledged(alertmanager, lineage, build):
    clock = FakeClock(recent_minute(5))
    engine = await outage(lineage, build, clock)
    [alert] = engine.alerts()
    sender = AlertmanagerSender(engine, alertmanager, interval=0.2)
    await sender.start()
    try:
        await until(lambda: am_alert(alertmanager, alert.alert_id), "the page")
        now = datetime.now(UTC)
        async with AlertmanagerClient(alertmanager) as client:
            await client.create_silence(
                {"alert_id": alert.alert_id}, now, now + timedelta(hours=1), "pat", "known outage"
            )

        async def acknowledged() -> bool:
            return engine.alerts()[0].state == "acknowledged"

        await until(acknowledged, "the acknowledgement")
        acked = engine.alerts()[0]
        assert acked.acknowledged_by == "pat" and "known outage" in (acked.ack_note or "")
        # No silence is made back for an acknowledgement that came from a silence.
        assert sender.silences_created == 0
    finally:
        await sender.stop()


async def test_unreachable_alertmanager_is_counted_and_retried(alertmanager, lineage, build):
    clock = FakeClock(recent_minute(5))
    engine = await outage(lineage, build, clock)
    [alert] = engine.alerts()
    sender = AlertmanagerSender(engine, f"http://127.0.0.1:{free_port()}", interval=0.2)
    assert await sender.send_once() is False
    assert sender.failures == 1 and sender.sent == 0
    sender.engine.ack_listeners.append(sender.on_acknowledged)
    acked = await engine.acknowledge(alert.alert_id, "olivia")  # still succeeds
    assert acked.state == "acknowledged"

    async def failed_twice() -> bool:
        return sender.failures == 2 and not sender._background

    await until(failed_twice, "the failed silence")
    assert list(sender._pending_silences) == [alert.alert_id]
    # Once Alertmanager answers, the next round sends the alert and the queued silence.
    await sender.client.close()
    sender.url, sender._client = alertmanager, None
    assert await sender.send_once() is True
    assert sender.silences_created == 1 and sender.sent == 1
    registry = CollectorRegistry()
    sender.register_metrics(registry)
    assert registry.get_sample_value("interlock_alertmanager_failures_total") == 2
    assert registry.get_sample_value("interlock_alertmanager_alerts_sent_total") == 1
    assert registry.get_sample_value("interlock_alertmanager_silences_created_total") == 1
    await until(lambda: am_alert(alertmanager, alert.alert_id), "the page after retry")
    await engine.tick()  # the engine kept evaluating throughout
    await sender.stop()


async def test_condition_change_ends_the_old_alertname(lineage, build):
    engine = await outage(lineage, build, FakeClock(recent_minute(5)))
    [alert] = engine.alerts()
    sender = AlertmanagerSender(engine, "http://127.0.0.1:9", interval=0.2)
    [first] = sender._payloads()
    assert first["labels"]["alertname"] == "InterlockSlaPageFast"
    alert.condition, alert.severity = "ticket", "ticket"  # the burn slowed to a ticket
    ended, current = sender._payloads()
    # The old label set is sent as ended now, not left firing until its endsAt runs out.
    assert ended["labels"] == first["labels"] and ended["endsAt"] < first["endsAt"]
    assert current["labels"]["alertname"] == "InterlockSlaTicket"
    assert current["labels"]["severity"] == "ticket"
    [again] = sender._payloads()  # once only
    assert again["labels"] == current["labels"]


def test_alertmanager_url_setting_defaults_off():
    from collector import load_settings

    assert load_settings(env={}).alerts.alertmanager_url is None
    on = load_settings(env={"INTERLOCK_ALERTS_ALERTMANAGER_URL": "http://am:9093"})
    assert on.alerts.alertmanager_url == "http://am:9093" and on.alerts.resend_interval == 30
