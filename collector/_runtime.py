"""The Interlock runtime: one process that owns the lineage file and runs the
bus, the collector, the flows, the ingress, the SLA engine, replay and the
control API, plus (on request) the demo landscape and the dashboard.

    Runtime(settings).start()  →  control API on settings.api.port
    Runtime.stop()             →  everything stopped, the lineage flushed and closed
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter
from pydantic import SecretStr

from adapters import RetryPolicy
from adapters.flows import (
    STEPS,
    BillingWebhookIngress,
    CrmPoller,
    DeliveryLedger,
    PositionStore,
    QuoteToCash,
    StepRunner,
    positions_path_for,
)
from adapters.sandbox import ManagedProcess, free_port
from adapters.sandbox._landscape import Landscape, LandscapeEndpoints
from tracing import ConfigError, setup_tracing

from ._auth import Role, TokenStore, load_tokens
from ._bus import Bus, EmbeddedBus
from ._config import Settings

__all__ = ["Runtime", "RuntimeInfo", "dashboard_command", "with_landscape"]

log = logging.getLogger(__name__)

#: The step tables of the flows this runtime runs (what a transaction waits for).
FLOWS = (STEPS,)


def dashboard_command(app: Path, port: int) -> list[str]:
    """The command that serves the dashboard ``app`` on ``port``.

    ``client.toolbarMode minimal`` hides Streamlit's developer toolbar, whose Deploy
    button would otherwise show on every page.
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


@dataclass
class RuntimeInfo:
    api_url: str
    dashboard_url: str | None = None
    demo_tokens: dict[str, str] = field(default_factory=dict)
    tokens_file: Path | None = None


class Runtime:
    """Assembles and runs Interlock from :class:`Settings`."""

    def __init__(
        self, settings: Settings, *, demo: bool | None = None, api_port: int | None = None
    ) -> None:
        self.settings = settings
        self._api_port = api_port
        self.demo = settings.demo.enabled if demo is None else demo
        self.info: RuntimeInfo | None = None
        self.landscape: Any = None
        self.traffic: Any = None
        self.bus: Bus | None = None
        self.lineage: Any = None
        self.collector: Any = None
        self.metrics: Any = None
        self.flow: QuoteToCash | None = None
        self.poller: CrmPoller | None = None
        self.webhooks: BillingWebhookIngress | None = None
        self.sla: Any = None
        self.alert_sender: Any = None
        self.replay: Any = None
        self.app: Any = None
        self._adapters: list[Any] = []
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._dashboard: ManagedProcess | None = None
        self._started = False

    # -- assembly ---------------------------------------------------------------------

    def _tokens(self) -> tuple[TokenStore, dict[str, str]]:
        store = load_tokens(
            self.settings.tokens, env=os.environ, file=self.settings.api.tokens_file
        )
        demo_tokens: dict[str, str] = {}
        if self.demo:
            # Fresh tokens per demo run, one per role; never printed, written to a 0600 file.
            for role in Role:
                token = secrets.token_urlsafe(24)
                name = f"demo-{role.name.lower()}"
                store.add(name, role, token)
                demo_tokens[name] = token
            # A second approver, so four-eyes approval can be tried in the demo.
            token = secrets.token_urlsafe(24)
            store.add("demo-approver-2", Role.APPROVER, token)
            demo_tokens["demo-approver-2"] = token
        return store, demo_tokens

    def _make_bus(self) -> Bus:
        s = self.settings
        if s.use_kafka:
            from ._kafka import KafkaBus, KafkaSettings
            from ._kafka_metrics import KafkaMetrics

            if not s.bus.kafka_bootstrap:
                raise ConfigError("bus.kafka_bootstrap", "required when bus.kind is kafka")
            return KafkaBus(
                KafkaSettings(
                    bootstrap=s.bus.kafka_bootstrap,
                    events_topic=s.bus.events_topic,
                    dead_letter_topic=s.bus.dead_letter_topic,
                    partitions=s.bus.partitions,
                    stall_after=s.bus.stall_after,
                ),
                # On the control API's /metrics: lag, oldest age, failed writes, restarts.
                metrics=KafkaMetrics(self.metrics.registry),
            )
        journal = None
        if s.bus.journal and s.lineage.path != ":memory:":
            journal = Path(s.lineage.path).resolve().parent / "journal"
        return EmbeddedBus(partitions=s.bus.partitions, journal=journal)

    async def start(self) -> RuntimeInfo:
        if self._started:
            assert self.info is not None
            return self.info
        self._started = True
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> RuntimeInfo:
        from adapters.billing import (
            BillingAdapter,
            event_invoice_metadata,
            invoice_from_event,
            parse_stripe_event,
            stripe_webhook_router,
        )
        from adapters.crm import SalesforceAdapter
        from adapters.erp import TrytonAdapter
        from adapters.support import ZendeskAdapter

        from ._api import create_app
        from ._ingest import Collector
        from ._lineage import AsyncLineage, LineageStore
        from ._metrics import Metrics

        s = self.settings
        setup_tracing("interlock")
        port = self._api_port or s.api.port or free_port()
        api_url = f"http://{s.api.host}:{port}"

        if self.demo:
            workdir = Path(s.demo.workdir)
            self.landscape = Landscape(workdir, webhook_url=f"{api_url}/webhooks/stripe")
            ep = await asyncio.to_thread(self.landscape.start)
            s = self.settings = with_landscape(s, ep)
        _require(s)

        tokens, demo_tokens = self._tokens()
        self.metrics = Metrics()
        if s.lineage.path != ":memory:":
            Path(s.lineage.path).parent.mkdir(parents=True, exist_ok=True)
        store = LineageStore(
            s.lineage.path,
            memory_limit=s.lineage.memory_limit,
            threads=s.lineage.threads,
            flows=FLOWS,
        )
        store.open()
        self.lineage = AsyncLineage(store)
        self.bus = bus = self._make_bus()
        if not isinstance(bus, EmbeddedBus):
            # Kafka: topics and the producer first; batch consumers join a running bus.
            await bus.start()
        self.collector = Collector(
            self.lineage,
            self.metrics,
            batch_size=s.lineage.batch_size,
            flush_interval=s.lineage.flush_interval,
        )
        self.collector.attach(bus)

        assert s.erp.url and s.erp.password and s.billing.api_base and s.billing.api_key
        assert s.crm.instance_url and s.crm.access_token and s.support.url
        assert s.support.email and s.support.api_token
        erp = TrytonAdapter(
            s.erp.url, s.erp.database, s.erp.user, s.erp.password.get_secret_value()
        )
        billing = BillingAdapter(
            s.billing.api_base,
            s.billing.api_key.get_secret_value(),
            max_subscription_items=s.billing.max_subscription_items,
            bundle_lines=s.billing.bundle_lines,
            attach_test_card=s.billing.attach_test_card,
        )
        crm = SalesforceAdapter(
            s.crm.instance_url,
            s.crm.access_token.get_secret_value(),
            verify=s.crm.ca_file or True,
        )
        support = ZendeskAdapter(
            s.support.url, s.support.email, s.support.api_token.get_secret_value()
        )
        self._adapters = [erp, billing, crm, support]

        r = s.retry
        policy = RetryPolicy(
            max_attempts=r.max_attempts,
            base_delay=r.base_delay,
            max_delay=r.max_delay,
            max_retry_after=r.max_retry_after,
        )
        self.flow = QuoteToCash(
            bus, StepRunner(bus, policy), crm=crm, erp=erp, billing=billing, support=support
        )
        self.flow.attach()
        ledger = DeliveryLedger()
        # Poll positions survive restarts beside the lineage, so an outage of any length
        # resumes where reading stopped.
        positions = await asyncio.to_thread(PositionStore(positions_path_for(s.lineage.path)).load)
        since = datetime.now(UTC) - timedelta(seconds=s.crm.start_lookback)
        self.poller = CrmPoller(
            crm, bus, ledger=ledger, interval=s.crm.poll_interval, positions=positions, since=since
        )
        self.webhooks = BillingWebhookIngress(
            bus,
            invoice_from_event=invoice_from_event,
            subscription_metadata=billing.get_subscription_metadata,
            event_metadata=event_invoice_metadata,
            ledger=ledger,
            positions=positions,
            parse_event=parse_stripe_event,
            since=since,
        )
        webhooks = self.webhooks
        metrics = self.metrics
        collector = self.collector

        async def on_rejected(code: str, detail: str) -> None:
            metrics.webhook_rejected.labels(system="billing", reason=code).inc()
            await webhooks.on_rejected(code, detail)

        routers: list[APIRouter] = [
            stripe_webhook_router(
                secrets=[x.get_secret_value() for x in s.billing.webhook_secrets],
                on_event=webhooks.on_event,
                on_rejected=on_rejected,
            )
        ]
        routers += await self._optional_routers()

        collector = self.collector

        async def health() -> dict[str, str]:
            # The bus is ok unless its collector consumer stalls (Kafka: no batch
            # committed for bus.stall_after seconds while messages wait).
            checks: dict[str, str] = {"bus": collector.bus_health(), "ingest": collector.health()}
            for name, adapter in (
                ("erp", erp),
                ("billing", billing),
                ("crm", crm),
                ("support", support),
            ):
                try:
                    checks[name] = "ok" if await adapter.health() else "down"
                except Exception as exc:  # health is a report: any failure is "down", not a crash
                    checks[name] = f"down: {type(exc).__name__}"
            return checks

        self.app = create_app(
            lineage=self.lineage,
            metrics=self.metrics,
            tokens=tokens,
            routers=routers,
            health=health,
            require_auth_for_reads=s.api.require_auth_for_reads,
        )
        if isinstance(bus, EmbeddedBus):
            self.metrics.set_backlog_source(bus.backlog)
        # Replay subscribes to outcomes before the bus starts consuming.
        if self.replay is not None:
            await self.replay.start()
        await bus.start()
        await self.collector.start()
        if self.sla is not None:
            await self.sla.start()
        if self.alert_sender is not None:
            await self.alert_sender.start()
        config = uvicorn.Config(
            self.app,
            host=s.api.host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = _EmbeddedServer(config)
        self._server_task = asyncio.create_task(self._server.serve(), name="control-api")
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise RuntimeError(f"the control API could not start on {api_url}")
            await asyncio.sleep(0.02)
        await self.poller.start()
        await self.webhooks.start_catch_up(billing, s.billing.catch_up_interval)

        self.info = RuntimeInfo(api_url=api_url, demo_tokens=demo_tokens)
        if demo_tokens:
            path = Path(s.demo.workdir) / "tokens.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{name}\t{tok}\n" for name, tok in demo_tokens.items()))
            path.chmod(0o600)
            self.info.tokens_file = path
        if self.demo:
            from adapters.sandbox._traffic import TrafficGenerator

            assert self.landscape is not None
            self.traffic = TrafficGenerator(
                s.crm.instance_url,
                s.crm.access_token.get_secret_value(),
                ca_file=s.crm.ca_file,
                rate_per_minute=s.demo.rate_per_minute,
                faults=s.demo.faults,
                seed=s.demo.seed,
                proxies={
                    "erp": self.landscape.erp_proxy,
                    "billing": self.landscape.billing_proxy,
                    "webhooks": self.landscape.webhook_proxy,
                },
            )
            await self.traffic.start()
        return self.info

    async def _optional_routers(self) -> list[APIRouter]:
        """The SLA engine and replay, with their API routes."""
        routers: list[APIRouter] = []
        from sla_rules import SlaEngine, load_rules, register_sla_metrics, sla_router

        self.sla = SlaEngine(self.lineage, load_rules(), flows=FLOWS)
        register_sla_metrics(self.metrics.registry, self.sla)
        a = self.settings.alerts
        if a.alertmanager_url:
            from datetime import timedelta

            from sla_rules import AlertmanagerSender

            self.alert_sender = AlertmanagerSender(
                self.sla,
                a.alertmanager_url,
                interval=a.resend_interval,
                silence_for=timedelta(hours=a.silence_hours),
                dashboard_url=a.dashboard_url or f"http://127.0.0.1:{self.settings.dashboard.port}",
            )
            self.alert_sender.register_metrics(self.metrics.registry)
        from replay import FileAuditHead, MemoryAuditHead, ReplayService, replay_router

        from ._explore import explore_router

        assert self.bus is not None and self.flow is not None
        r = self.settings.replay
        head = (
            MemoryAuditHead()
            if self.settings.lineage.path == ":memory:"
            else FileAuditHead(r.audit_head)
        )
        if isinstance(head, FileAuditHead):
            head.path.parent.mkdir(parents=True, exist_ok=True)
        self.replay = ReplayService(
            self.lineage,
            self.bus,
            probe=self.flow.probe,
            rate_per_second=r.rate_per_second,
            concurrency=r.concurrency,
            audit_head=head,
        )
        # Acknowledging an alert is a control action: it goes to the same audit trail.
        routers.append(sla_router(self.sla, audit=self.replay.record))
        routers.append(replay_router(self.replay))
        routers.append(explore_router(self.lineage))
        return routers

    def start_dashboard(self, port: int | None = None, *, token: str | None = None) -> str:
        """Start the Streamlit dashboard as a child process; returns its URL.

        ``token`` is the bearer token the dashboard reads with until someone signs in;
        the demo landscape hands it its ``demo-viewer`` token, so its pages show data
        although reads need a token.
        """
        assert self.info is not None
        port = port or self.settings.dashboard.port or free_port()
        token = token or self.info.demo_tokens.get("demo-viewer")
        app = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
        self._dashboard = ManagedProcess(
            "dashboard",
            dashboard_command(app, port),
            ready_url=f"http://127.0.0.1:{port}/_stcore/health",
            env={
                "INTERLOCK_API_URL": self.info.api_url,
                **({"INTERLOCK_API_TOKEN": token} if token else {}),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(app.parent.parent), os.environ.get("PYTHONPATH")])
                ),
            },
            ready_timeout=60,
        ).start()
        self.info.dashboard_url = f"http://127.0.0.1:{port}"
        return self.info.dashboard_url

    async def stop(self) -> None:
        """Stop everything, in the reverse order of start; safe twice."""
        if self._dashboard is not None:
            self._dashboard.stop()
            self._dashboard = None
        for component in (self.traffic, self.poller, self.webhooks):
            if component is not None:
                await component.stop()
        self.traffic = None
        self.poller = None
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            await asyncio.gather(self._server_task, return_exceptions=True)
            self._server = None
            self._server_task = None
        for component in (self.alert_sender, self.replay, self.sla):
            if component is not None:
                await component.stop()
        self.alert_sender = None
        self.replay = None
        self.sla = None
        if self.bus is not None:
            if isinstance(self.bus, EmbeddedBus) and self.collector is not None:
                # Store what is in flight while the journal can still be told.
                await self.bus.drain()
                await self.collector.flush()
            await self.bus.stop()
            self.bus = None
        if self.collector is not None:
            await self.collector.stop()
            self.collector = None
        if self.lineage is not None:
            await self.lineage.close()
            self.lineage = None
        for adapter in self._adapters:
            await adapter.aclose()
        self._adapters = []
        if self.landscape is not None:
            await asyncio.to_thread(self.landscape.stop)
            self.landscape = None
        self._started = False


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: signals belong to ``interlock up``, which stops
    everything in order, so the server must not take SIGINT/SIGTERM for itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def with_landscape(s: Settings, ep: LandscapeEndpoints) -> Settings:
    """``s`` pointed at the systems of a running landscape."""
    return s.model_copy(
        update={
            "erp": s.erp.model_copy(
                update={
                    "url": ep.erp_url,
                    "database": ep.erp_database,
                    "user": ep.erp_user,
                    "password": SecretStr(ep.erp_password),
                }
            ),
            "billing": s.billing.model_copy(
                update={
                    "api_base": ep.billing_url,
                    "api_key": SecretStr(ep.billing_api_key),
                    "webhook_secrets": [SecretStr(ep.webhook_secret)],
                    # localstripe takes one item per subscription.
                    "max_subscription_items": 1,
                    "bundle_lines": True,
                    # localstripe is the demo's test-mode billing: invoices get paid.
                    "attach_test_card": True,
                }
            ),
            "crm": s.crm.model_copy(
                update={
                    "instance_url": ep.crm_url,
                    "access_token": SecretStr(ep.crm_token),
                    "ca_file": ep.crm_ca_file,
                }
            ),
            "support": s.support.model_copy(
                update={
                    "url": ep.support_url,
                    "email": ep.support_email,
                    "api_token": SecretStr(ep.support_token),
                }
            ),
        }
    )


def _require(s: Settings) -> None:
    """Without the demo landscape every system must be configured."""
    missing = [
        name
        for name, value in (
            ("erp.url", s.erp.url),
            ("erp.password", s.erp.password),
            ("billing.api_base", s.billing.api_base),
            ("billing.api_key", s.billing.api_key),
            ("billing.webhook_secrets", s.billing.webhook_secrets),
            ("crm.instance_url", s.crm.instance_url),
            ("crm.access_token", s.crm.access_token),
            ("support.url", s.support.url),
            ("support.email", s.support.email),
            ("support.api_token", s.support.api_token),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            missing[0],
            "is required when the demo landscape is off "
            f"(also missing: {', '.join(missing[1:]) or 'nothing else'})",
        )
