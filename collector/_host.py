"""The host the plug-ins install into, and the order it starts and stops them in.

The builder (:mod:`collector.host`) opens the lineage, makes the bus and the
collector, then asks each plug-in to ``install`` itself: systems, flows,
components, routers and health checks land here. Everything the rest of
Interlock needs to know about them is read from the host, declared once:

- ``systems``: the business systems and their lanes (``GET /api/v1/systems``);
- ``flows``: their step tables, trigger kinds, money steps, probes and payload
  models (what replay validates a corrected payload against);
- ``rule_steps``: the steps each SLA rule measures (replay's selection by rule);
- ``rule_files``: SLA rule files a room ships beside its code (a flow's own go in
  its ``FlowSpec.rule_files``), loaded by the SLA plug-in with the shipped rules.

    >>> host = Host(Settings(), bus=EmbeddedBus(), api_url="http://127.0.0.1:1")
    >>> host.add_system(SystemInfo("erp", "ERP", "Tryton", lane=20))
    >>> [s.name for s in host.systems]
    ['interlock', 'erp']
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from tracing import ENVELOPE_SCHEMA, ConfigError, Event, Schema

from ._bus import Bus
from ._config import Settings
from ._contracts import Component, Stage, SystemAdapter, SystemInfo
from ._flowspec import Flow, FlowSpec, PayloadModelConflict

if TYPE_CHECKING:
    from ._roles import TokenStore

__all__ = ["INTERLOCK_SYSTEM", "Host"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: Interlock itself, the lane between the CRM and the systems it writes to.
INTERLOCK_SYSTEM = SystemInfo("interlock", "Interlock", "Interlock", lane=10)

HealthCheck = Callable[[], Awaitable[str]]


@dataclass(slots=True)
class _Placed:
    component: Component
    name: str
    stage: Stage
    stop_stage: Stage
    order: int


class Host:
    """What the plug-ins install into; starts and stops what they installed."""

    def __init__(
        self,
        settings: Settings,
        *,
        bus: Bus,
        api_url: str,
        lineage: Any = None,
        metrics: Any = None,
        tokens: TokenStore | None = None,
        demo: bool = False,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.api_url = api_url
        #: The lineage (:class:`collector.lineage.AsyncLineage`) the API and services read.
        self.lineage = lineage
        #: The Prometheus metrics (:class:`collector.api.Metrics`) served on /metrics.
        self.metrics = metrics
        self.tokens = tokens
        self.demo = demo
        self.routers: list[Any] = []
        #: SLA rule ID → the steps it measures; filled by the SLA plug-in.
        self.rule_steps: dict[str, frozenset[str]] = {}
        self._rule_files: list[Path] = []
        self._systems: dict[str, SystemInfo] = {INTERLOCK_SYSTEM.name: INTERLOCK_SYSTEM}
        self._adapters: dict[str, SystemAdapter] = {}
        self._flows: list[Flow] = []
        self._specs: list[FlowSpec] = []
        self._money: set[str] = set()
        #: Payload key -> (the flow that declared it first, its model).
        self._payload: dict[str, tuple[str, type[BaseModel]]] = {}
        self._payload_models: dict[str, type[BaseModel]] = {}
        self._payload_view = MappingProxyType(self._payload_models)
        #: The control audit trail's recorder (``replay.ReplayService.record``), set by
        #: the plug-in that keeps the trail; every control action is recorded through it.
        self.auditor: Any = None
        self._placed: list[_Placed] = []
        self._started: list[_Placed] = []
        self._health: dict[str, HealthCheck] = {}
        self._shared: dict[str, Any] = {}
        self._schemas: dict[str, Schema] = {ENVELOPE_SCHEMA.name: ENVELOPE_SCHEMA}

    # -- settings -----------------------------------------------------------------------

    def section(self, name: str, model: type[M]) -> M:
        """The validated settings section ``[name]`` a plug-in owns."""
        return self.settings.section(name, model)

    # -- systems ------------------------------------------------------------------------

    def add_system(self, info: SystemInfo, adapter: SystemAdapter | None = None) -> None:
        """Declare a business system (and its adapter, closed when the host stops)."""
        if info.name in self._systems and info.name != INTERLOCK_SYSTEM.name:
            raise ConfigError(f"systems.{info.name}", "is installed twice")
        self._systems[info.name] = info
        if adapter is not None:
            self._adapters[info.name] = adapter

    @property
    def systems(self) -> list[SystemInfo]:
        """Every system, in lane order (the explorer's lanes, left to right)."""
        return sorted(self._systems.values(), key=lambda s: (s.lane, s.name))

    @property
    def adapter_systems(self) -> tuple[str, ...]:
        """The systems with an adapter (what the adapters page measures)."""
        return tuple(s.name for s in self.systems if s.name in self._adapters)

    def adapter(self, name: str) -> SystemAdapter:
        """The adapter of system ``name``; a plug-in that needs a missing one fails clearly."""
        try:
            return self._adapters[name]
        except KeyError:
            installed = ", ".join(sorted(self._adapters)) or "none"
            raise ConfigError(
                f"systems.{name}", f"no adapter is installed (installed: {installed})"
            ) from None

    # -- flows --------------------------------------------------------------------------

    def declare_flow(self, spec: FlowSpec) -> None:
        """Declare a flow's facts without running it (a host that only reads a lineage
        the flow wrote: the dashboard tests, the benches)."""
        if any(s.name == spec.name for s in self._specs):
            raise ConfigError(f"flows.{spec.name}", "is installed twice")
        for key, model in spec.payload_models.items():
            declared = self._payload.get(key)
            if declared is not None and declared[1] is not model:
                raise PayloadModelConflict(key, declared, (spec.name, model))
        self._specs.append(spec)
        self._money.update(spec.money_steps)
        for key, model in spec.payload_models.items():
            self._payload.setdefault(key, (spec.name, model))
            self._payload_models.setdefault(key, model)

    def add_flow(self, flow: Flow) -> None:
        """Install a running flow: the host subscribes it to its trigger kinds first."""
        spec = flow.spec
        self.declare_flow(spec)
        self._flows.append(flow)

        async def subscribe() -> None:
            self.bus.subscribe(spec.subscription, flow.handle, kinds=spec.trigger_kinds)

        from ._contracts import component

        self.add_component(component(f"flow {spec.name}", start=subscribe), Stage.SUBSCRIBE)

    @property
    def flows(self) -> list[Flow]:
        return list(self._flows)

    @property
    def flow_specs(self) -> list[FlowSpec]:
        """Every declared flow's spec (running or not)."""
        return list(self._specs)

    def add_rule_files(self, *paths: Path) -> None:
        """SLA rule files (or folders of them) a plug-in that is not a flow ships in its
        own room; the SLA plug-in loads and checks them with the shipped rules, so it
        must install after the plug-in (its ``after``)."""
        for path in map(Path, paths):
            if path not in self._rule_files:
                self._rule_files.append(path)

    @property
    def rule_files(self) -> tuple[Path, ...]:
        """Every rule file added with :meth:`add_rule_files` and every declared flow's
        ``rule_files``, in the order they were installed."""
        flows = tuple(f for spec in self._specs for f in spec.rule_files)
        return (*flows, *self._rule_files)

    def add_schema(self, schema: Schema) -> None:
        """Publish a schema beside the envelope and the flows' payload models."""
        known = self._schemas.get(schema.name)
        if known is not None and known.model is not schema.model:
            raise ConfigError(
                f"schema {schema.name}",
                f"published twice with different models ({known.model.__qualname__}, "
                f"{schema.model.__qualname__})",
            )
        self._schemas[schema.name] = schema

    @property
    def schemas(self) -> list[Schema]:
        """Every published schema: the envelope, each installed flow's payload models
        (``FlowSpec.payload_models``, as ``Schema.of`` reads them) and those added."""
        out = dict(self._schemas)
        for spec in self._specs:
            for model in spec.payload_models.values():
                schema = Schema.of(model)
                known = out.get(schema.name)
                if known is not None and known.model is not model:
                    raise ConfigError(
                        f"flow {spec.name}",
                        f"payload model {schema.name} differs from the one published",
                    )
                out[schema.name] = schema
        return sorted(out.values(), key=lambda s: (s.kind != "envelope", s.name))

    @property
    def money_steps(self) -> AbstractSet[str]:
        """The steps of every flow whose redo moves money (a live view: a flow
        installed later adds its own)."""
        return self._money

    @property
    def payload_models(self) -> Mapping[str, type[BaseModel]]:
        """Payload key -> the model its value must validate as, merged from every
        flow's ``payload_models`` (a live, read-only view: a flow installed later adds
        its own; a key two flows declare with different models is refused at install
        with :class:`PayloadModelConflict`)."""
        return self._payload_view

    async def audit(self, *args: Any, **kwargs: Any) -> None:
        """Record a control action in the audit trail (the auditor's signature)."""
        if self.auditor is None:
            raise RuntimeError("no audit trail is installed (the replay plug-in keeps it)")
        await self.auditor(*args, **kwargs)

    async def probe(self, dead_letter: Event) -> bool | None:
        """Ask the flow that owns the dead letter's step whether its effect is there."""
        for flow in self._flows:
            if dead_letter.step in flow.spec.step_names:
                return await flow.probe(dead_letter)
        return None

    # -- components, routes, health -----------------------------------------------------

    def add_component(
        self,
        component: Component,
        stage: Stage,
        *,
        name: str | None = None,
        stop_stage: Stage | None = None,
    ) -> None:
        """Start ``component`` at ``stage``; stop it in reverse order (at ``stop_stage``
        when it must stop earlier than it started: replay subscribes before the bus
        starts but stops while it still runs)."""
        self._placed.append(
            _Placed(
                component,
                name or getattr(component, "name", None) or type(component).__name__,
                stage,
                stop_stage if stop_stage is not None else stage,
                len(self._placed),
            )
        )

    def add_router(self, router: Any) -> None:
        """A FastAPI router the control API serves."""
        self.routers.append(router)

    def add_health(self, name: str, check: HealthCheck) -> None:
        """A check ``/healthz`` reports under ``name`` ("ok", or why not)."""
        self._health[name] = check

    def shared(self, key: str, factory: Callable[[], T]) -> T:
        """One object plug-ins share (the delivery ledger of the CRM and billing
        ingress), made by the first plug-in that asks."""
        if key not in self._shared:
            self._shared[key] = factory()
        value: T = self._shared[key]
        return value

    async def health(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        for name, check in self._health.items():
            checks[name] = await _report(check)
        for name, adapter in self._adapters.items():

            async def probe(adapter: SystemAdapter = adapter) -> str:
                return "ok" if await adapter.health() else "down"

            checks[name] = await _report(probe)
        return checks

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def start_order(self) -> list[str]:
        return [p.name for p in sorted(self._placed, key=lambda p: (p.stage, p.order))]

    @property
    def stop_order(self) -> list[str]:
        return [p.name for p in self._stop_sequence(self._placed)]

    @staticmethod
    def _stop_sequence(placed: Sequence[_Placed]) -> list[_Placed]:
        return sorted(placed, key=lambda p: (p.stop_stage, p.order), reverse=True)

    async def start(self) -> None:
        """Start every component in stage order; on a failure stop what started."""
        for placed in sorted(self._placed, key=lambda p: (p.stage, p.order)):
            if placed in self._started:
                continue
            await placed.component.start()
            self._started.append(placed)

    async def stop(self) -> None:
        """Stop what started in reverse order, then close the adapters; safe twice.

        A component that fails to stop is logged and the rest still stop."""
        for placed in self._stop_sequence(self._started):
            try:
                await placed.component.stop()
            except Exception:
                log.exception("%s did not stop cleanly", placed.name)
        self._started = []
        for name, adapter in list(self._adapters.items()):
            try:
                await adapter.aclose()
            except Exception:
                log.exception("the %s adapter did not close cleanly", name)

    def describe(self) -> Mapping[str, Any]:
        return {
            "systems": [s.as_dict() for s in self.systems],
            "flows": [s.name for s in self._specs],
            "start_order": self.start_order,
        }


async def _report(check: HealthCheck) -> str:
    try:
        return await check()
    except Exception as exc:  # health is a report: any failure is "down", not a crash
        return f"down: {type(exc).__name__}"
