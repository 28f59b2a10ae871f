"""Alert delivery to Prometheus Alertmanager through its v2 API.

:class:`AlertmanagerSender` runs beside the SLA engine. Every ``interval`` it posts
each open alert to ``POST /api/v2/alerts`` (Alertmanager expects resends and ends an
alert it stops hearing about at ``endsAt``), and each alert resolved in the last
``resolved_for`` once more with ``endsAt`` set to when it resolved. Labels are what a
receiver routes on, the same as the exported Prometheus rules' (``alertname``,
``rule``, ``service``, ``impact_tier``, ``severity``, ``burn_condition``) plus
``alert_id``; annotations carry the business impact and links.

Acknowledging an alert in Interlock creates a silence matching its ``alert_id``
(``POST /api/v2/silences``); an alert Alertmanager reports as silenced is marked
acknowledged in Interlock, by the silence's author. Alertmanager being down never
stops the engine: each failed call is logged and counted in :attr:`failures`, and the
next round tries again (an unsent silence stays queued until it is created).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ._alerts import Alert, AlertStateError
from ._engine import SlaEngine
from ._model import Rule
from ._prometheus import DEFAULT_DASHBOARD_URL, runbook_url

__all__ = ["AlertmanagerClient", "AlertmanagerSender", "alert_labels", "alert_payload", "alertname"]

log = logging.getLogger(__name__)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlertmanagerClient:
    """The few Alertmanager v2 calls Interlock needs; raises ``httpx.HTTPError``."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AlertmanagerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        (await self._http.post("/api/v2/alerts", json=alerts)).raise_for_status()

    async def alerts(self) -> list[dict[str, Any]]:
        response = await self._http.get("/api/v2/alerts")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    async def silence(self, silence_id: str) -> dict[str, Any]:
        response = await self._http.get(f"/api/v2/silence/{quote(silence_id)}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def create_silence(
        self, matchers: dict[str, str], starts: datetime, ends: datetime, by: str, comment: str
    ) -> str:
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in matchers.items()
            ],
            "startsAt": _iso(starts),
            "endsAt": _iso(ends),
            "createdBy": by,
            "comment": comment,
        }
        response = await self._http.post("/api/v2/silences", json=body)
        response.raise_for_status()
        return str(response.json()["silenceID"])


def alertname(condition: str) -> str:
    """The alert name the exported Prometheus rules use for ``condition``
    (``page_fast`` → ``InterlockSlaPageFast``), so one route serves both."""
    return "InterlockSla" + "".join(p.title() for p in condition.split("_"))


def alert_labels(alert: Alert, rule: Rule | None) -> dict[str, str]:
    """What a receiver routes on: the exported rules' labels plus the alert's ID."""
    return {
        "alertname": alertname(alert.condition),
        "rule": alert.rule_id,
        "service": rule.service if rule else "",
        "impact_tier": alert.impact_tier,
        "severity": alert.severity,
        "burn_condition": alert.condition,
        "alert_id": alert.alert_id,
    }


def alert_payload(
    alert: Alert,
    rule: Rule | None,
    *,
    dashboard_url: str,
    now: datetime,
    ends_in: timedelta,
) -> dict[str, Any]:
    """One Interlock alert as an Alertmanager v2 ``postableAlert``.

    An open alert ends ``ends_in`` after ``now`` unless resent; a resolved one ends
    when it resolved (never later than ``now``: Alertmanager compares with its clock).
    """
    if alert.open:
        ends = now + ends_in
    else:
        assert alert.resolved_at is not None
        ends = min(alert.resolved_at, now)
    link = f"{dashboard_url.rstrip('/')}/Alerts?alert={quote(alert.alert_id)}"
    annotations = {
        "summary": alert.summary,
        "value_at_risk": f"{alert.value_at_risk:.2f}",
        "currency": alert.currency or "",
        "customers_affected": str(alert.customers_affected),
        "items": str(alert.items),
        "scope": alert.scope,
        "dashboard_url": link,
    }
    if rule is not None and (url := runbook_url(rule, dashboard_url)):
        annotations["runbook_url"] = url
    return {
        "labels": alert_labels(alert, rule),
        "annotations": annotations,
        "startsAt": _iso(alert.opened_at),
        "endsAt": _iso(ends),
        "generatorURL": link,
    }


@dataclass
class AlertmanagerSender:
    """Pushes the engine's alerts to Alertmanager and keeps acknowledgements in step."""

    engine: SlaEngine
    url: str
    interval: float = 30.0
    #: How long a resolved alert keeps being sent as resolved.
    resolved_for: timedelta = timedelta(minutes=15)
    #: How long a silence created by an acknowledgement lasts.
    silence_for: timedelta = timedelta(hours=4)
    #: Where alert and runbook links point (the dashboard a receiver can open).
    dashboard_url: str = DEFAULT_DASHBOARD_URL
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sent: int = 0
    failures: int = 0
    silences_created: int = 0
    _client: AlertmanagerClient | None = None
    _task: asyncio.Task[None] | None = None
    _pending_silences: dict[str, Alert] = field(default_factory=dict)
    _background: set[asyncio.Task[bool]] = field(default_factory=set)
    #: Alert IDs acknowledged because of a silence (no silence is created back for them).
    _from_silence: set[str] = field(default_factory=set)
    #: The label set last sent per alert: when its condition changes (a new alertname),
    #: the old one is sent as ended rather than left to expire.
    _last_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def client(self) -> AlertmanagerClient:
        if self._client is None:
            self._client = AlertmanagerClient(self.url)
        return self._client

    async def start(self) -> None:
        self.engine.ack_listeners.append(self.on_acknowledged)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alertmanager-sender")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(ValueError):
            self.engine.ack_listeners.remove(self.on_acknowledged)
        for pending in list(self._background):
            pending.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _run(self) -> None:
        while True:
            try:
                await self.send_once()
            # An answer Alertmanager should never give (a body without the fields) must
            # not end delivery: logged, counted, tried again next round.
            except Exception as exc:
                self._failed("round", exc)
                log.exception("Alertmanager delivery round failed")
            await asyncio.sleep(self.interval)

    async def send_once(self) -> bool:
        """One round: every alert, then queued silences, then silences seen there.

        Returns whether every call succeeded; a failure is logged and counted, and
        when the alerts cannot be sent the round stops there (Alertmanager is down).
        """
        if not await self._post():
            return False
        ok = await self._flush_silences()
        return await self._sync_silences() and ok

    def _payloads(self) -> list[dict[str, Any]]:
        now = self.clock()
        engine_now = self.engine.clock()
        ends_in = timedelta(seconds=max(4 * self.interval, 60))
        out = []
        for alert in self.engine.alerts(include_resolved=True, limit=10_000):
            resolved = alert.resolved_at
            if resolved is not None and engine_now - resolved > self.resolved_for:
                self._last_labels.pop(alert.alert_id, None)
                continue
            payload = alert_payload(
                alert,
                self.engine.rule(alert.rule_id),
                dashboard_url=self.dashboard_url,
                now=now,
                ends_in=ends_in,
            )
            previous = self._last_labels.get(alert.alert_id)
            if previous is not None and previous != payload["labels"]:
                out.append({**payload, "labels": previous, "endsAt": _iso(now)})
            self._last_labels[alert.alert_id] = payload["labels"]
            out.append(payload)
        return out

    async def _post(self) -> bool:
        payloads = self._payloads()
        if not payloads:
            return True
        try:
            await self.client.post_alerts(payloads)
        except httpx.HTTPError as exc:
            self._failed("sending alerts", exc)
            return False
        self.sent += len(payloads)
        return True

    async def on_acknowledged(self, alert: Alert) -> None:
        """Engine hook: an alert acknowledged in Interlock is silenced in Alertmanager.

        The silence is made in the background, so an acknowledgement never waits on
        Alertmanager; one that fails stays queued for the next round.
        """
        if alert.alert_id in self._from_silence:
            return
        self._pending_silences[alert.alert_id] = alert
        task = asyncio.create_task(self._flush_silences(), name="alertmanager-silence")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _flush_silences(self) -> bool:
        ok = True
        for alert_id, alert in list(self._pending_silences.items()):
            if self._pending_silences.pop(alert_id, None) is None:
                continue  # another round took it
            if not await self._create_silence(alert):
                self._pending_silences.setdefault(alert_id, alert)
                ok = False
        return ok

    async def _create_silence(self, alert: Alert) -> bool:
        starts = self.clock()
        by = alert.acknowledged_by or "interlock"
        comment = f"acknowledged in Interlock: {alert.ack_note or alert.summary}"
        try:
            await self.client.create_silence(
                {"alert_id": alert.alert_id}, starts, starts + self.silence_for, by, comment
            )
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self._failed("creating a silence", exc)
            return False
        self.silences_created += 1
        return True

    async def _sync_silences(self) -> bool:
        """Acknowledge in Interlock each firing alert Alertmanager reports as silenced."""
        firing = {a.alert_id: a for a in self.engine.alerts(state="firing", limit=10_000)}
        if not firing:
            return True
        try:
            for seen in await self.client.alerts():
                alert_id = seen.get("labels", {}).get("alert_id")
                silenced_by = seen.get("status", {}).get("silencedBy") or []
                if alert_id not in firing or not silenced_by:
                    continue
                silence = await self.client.silence(silenced_by[0])
                self._from_silence.add(alert_id)
                note = f"silenced in Alertmanager ({silence.get('id')}): {silence.get('comment')}"
                with contextlib.suppress(AlertStateError):
                    await self.engine.acknowledge(
                        alert_id, str(silence.get("createdBy") or "alertmanager"), note
                    )
        except (httpx.HTTPError, ValueError, KeyError, AttributeError) as exc:
            self._failed("reading silences", exc)
            return False
        return True

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Expose the sender's counts as ``interlock_alertmanager_*_total`` on ``registry``."""
        registry.register(_SenderCollector(self))

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        log.warning("Alertmanager %s at %s failed: %s", what, self.url, exc)


class _SenderCollector(Collector):
    def __init__(self, sender: AlertmanagerSender) -> None:
        self._sender = sender

    def collect(self) -> Any:
        s = self._sender
        for name, doc, value in (
            ("alerts_sent", "Alerts posted to Alertmanager (each resend counts)", s.sent),
            ("failures", "Alertmanager calls that failed (retried next round)", s.failures),
            ("silences_created", "Silences created for acknowledged alerts", s.silences_created),
        ):
            family = CounterMetricFamily(f"interlock_alertmanager_{name}", doc)
            family.add_metric([], value)
            yield family
