"""The replay plug-in: dead-letter actions, replays and the control audit trail.

Replay reads from the host what the flows declare: which steps move money (four
eyes), each flow's dry-run probe, the payload models a correction is validated
against, and the steps each SLA rule measures (the SLA plug-in fills that map
after this one installs, for selection by rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from collector import Host, Stage

from ._api import replay_router
from ._audit import FileAuditHead, MemoryAuditHead
from ._service import ReplayService

__all__ = ["ReplayPlugin", "plugin"]


class ReplayPlugin:
    """Installs replay and its routes; the host's auditor is its audit trail."""

    name = "replay"
    after = ("quote_to_cash",)
    sections: Mapping[str, type[BaseModel]] = {}

    def __init__(self, **options: Any) -> None:
        #: Further :class:`ReplayService` options (tests: ``outcome_timeout``, ``clock``).
        self.options = options

    async def install(self, host: Host) -> None:
        r = host.settings.replay
        in_memory = host.settings.lineage.path == ":memory:"
        head = MemoryAuditHead() if in_memory else FileAuditHead(r.audit_head)
        if isinstance(head, FileAuditHead):
            head.path.parent.mkdir(parents=True, exist_ok=True)
        service = ReplayService(
            host.lineage,
            host.bus,
            probe=host.probe,
            rate_per_second=r.rate_per_second,
            concurrency=r.concurrency,
            audit_head=head,
            sla_rule_steps=host.rule_steps,
            money_steps=host.money_steps,
            payload_models=host.payload_models,
            **self.options,
        )
        host.auditor = service.record
        host.shared("replay.service", lambda: service)
        # It subscribes to step outcomes before the bus consumes, and stops while the
        # bus still runs.
        host.add_component(service, Stage.SUBSCRIBE, name="replay", stop_stage=Stage.SERVICE)
        host.add_router(replay_router(service))

    def register_cli(self, sub: Any) -> None:
        """The ``interlock`` sub-commands of this room."""
        from ._cli import register_cli

        register_cli(sub)


plugin = ReplayPlugin()
