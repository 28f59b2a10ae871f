"""The SLA plug-in: the shipped rules, checked against the installed flows and
systems, the evaluator, its metrics and routes, and alert delivery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from collector import Host, Stage

from ._alertmanager import AlertmanagerSender
from ._api import sla_router
from ._check import check_rules, rule_steps
from ._engine import SlaEngine
from ._model import SHIPPED_RULES_DIR, load_rules
from ._prometheus import register_sla_metrics

__all__ = ["SlaPlugin", "SlaSettings", "plugin"]


class SlaSettings(BaseModel):
    """``[sla]``: which rule files the engine evaluates and how often.

    ``rules`` replaces the shipped ``sla_rules/*.yaml`` (the installed flows' and rooms'
    own rule files are always loaded too); a staging landscape or a test can point it at
    rules with short windows and evaluate every half second.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Rule files or folders evaluated instead of the shipped rules (empty: the shipped).
    rules: list[str] = Field(default_factory=list)
    #: Seconds between evaluations.
    interval: float = Field(15.0, gt=0)


class SlaPlugin:
    """Installs the SLA engine over the lineage; fills the host's rule → steps map."""

    name = "sla"
    # After the plug-ins that ship rule files (flows, reconciliation) into the host.
    after = ("quote_to_cash", "replay", "reconcile")
    sections: Mapping[str, type[BaseModel]] = {"sla": SlaSettings}

    def __init__(self, rules: Sequence[Path] | None = None, **options: Any) -> None:
        #: Rule files or folders (default: the shipped rules) and further
        #: :class:`SlaEngine` options (benches: ``interval``).
        self.rules = rules
        self.options = options

    async def install(self, host: Host) -> None:
        specs = host.flow_specs
        configured = host.settings.section("sla", SlaSettings)
        # The rules given (or configured, or the shipped ones), then each installed
        # flow's and room's own.
        chosen = self.rules or [Path(p) for p in configured.rules] or [SHIPPED_RULES_DIR]
        rules = load_rules([*chosen, *host.rule_files])
        check_rules(rules, specs, systems=[s.name for s in host.systems])
        host.rule_steps.update({rule.id: rule_steps(rule, specs) for rule in rules})
        options = {"interval": configured.interval, **self.options}
        engine = SlaEngine(host.lineage, rules, flows=[spec.steps for spec in specs], **options)
        if host.metrics is not None:
            register_sla_metrics(host.metrics.registry, engine)
        host.add_component(engine, Stage.SERVICE, name="sla engine")
        a = host.settings.alerts
        if a.alertmanager_url:
            sender = AlertmanagerSender(
                engine,
                a.alertmanager_url,
                interval=a.resend_interval,
                silence_for=timedelta(hours=a.silence_hours),
                dashboard_url=a.dashboard_url or f"http://127.0.0.1:{host.settings.dashboard.port}",
            )
            if host.metrics is not None:
                sender.register_metrics(host.metrics.registry)
            host.add_component(sender, Stage.SERVICE, name="alertmanager sender")
        # Acknowledging an alert is a control action: it goes to the host's audit trail.
        host.add_router(sla_router(engine, audit=host.audit))

    def register_cli(self, sub: Any) -> None:
        """The ``interlock`` sub-commands of this room."""
        from ._cli import register_cli

        register_cli(sub)


plugin = SlaPlugin()
