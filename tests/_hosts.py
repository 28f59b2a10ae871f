"""Hosts for tests that read a seeded lineage through the real control API.

They use the one builder (:class:`collector.host.Interlock`) with the shipped
plug-ins, the systems declared but not connected and quote-to-cash declared but
not running, so the API, replay and SLA engine are exactly the ones ``interlock up``
installs. ``SeedLineage`` writes a test's events before anything starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from adapters.billing import plugin as billing
from adapters.billing.plugin import BillingPlugin
from adapters.crm import plugin as crm
from adapters.crm.plugin import CrmPlugin
from adapters.erp import plugin as erp
from adapters.erp.plugin import ErpPlugin
from adapters.flows.plugin import QuoteToCashPlugin
from adapters.support import plugin as support
from adapters.support.plugin import SupportPlugin
from collector import INTERLOCK_SYSTEM, Host, Plugin, Role, Settings, SystemInfo, TokenStore
from collector.host import Interlock, InterlockThread
from collector.process import free_port
from replay.plugin import ReplayPlugin
from sla_rules.plugin import SlaPlugin
from tracing import Event

#: The shipped systems, as their plug-ins declare them (Interlock's own lane included).
SYSTEMS: list[SystemInfo] = [INTERLOCK_SYSTEM, crm.INFO, erp.INFO, billing.INFO, support.INFO]


class SeedLineage:
    """A test plug-in: writes ``events`` into the lineage at install, before start."""

    name = "seed"
    after: tuple[str, ...] = ()
    sections: Mapping[str, type[BaseModel]] = {}

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = list(events)

    async def install(self, host: Host) -> None:
        if self.events:
            await host.lineage.write_batch(self.events)


def reading_plugins(*, replay: Mapping[str, Any] | None = None, sla: bool = True) -> list[Plugin]:
    """The shipped plug-ins for a host over a lineage (no system is connected)."""
    plugins: list[Plugin] = [
        CrmPlugin(connect=False),
        ErpPlugin(connect=False),
        BillingPlugin(connect=False),
        SupportPlugin(connect=False),
        QuoteToCashPlugin(run=False),
        ReplayPlugin(**(replay or {})),
    ]
    if sla:
        plugins.append(SlaPlugin())
    return plugins


def reading_settings(port: int, *, lineage: str = ":memory:", tokens_file: Path) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            "lineage": s.lineage.model_copy(update={"path": lineage}),
            "bus": s.bus.model_copy(update={"partitions": 2, "journal": False}),
            "api": s.api.model_copy(update={"port": port, "tokens_file": str(tokens_file)}),
            "demo": s.demo.model_copy(update={"enabled": False}),
        }
    )


def token_store(tokens: Mapping[str, tuple[str, Role]]) -> TokenStore:
    store = TokenStore()
    for token, (name, role) in tokens.items():
        store.add(name, role, token)
    return store


def serve(
    events: Sequence[Event],
    tokens: Mapping[str, tuple[str, Role]],
    *,
    workdir: Path,
    replay: Mapping[str, Any] | None = None,
    sla: bool = True,
    extra: Sequence[Plugin] = (),
) -> InterlockThread:
    """A started host over a lineage seeded with ``events`` (and ``extra`` plug-ins);
    ``stop()`` it after."""
    port = free_port()
    interlock = Interlock(
        reading_settings(port, tokens_file=workdir / "tokens.json"),
        [SeedLineage(events), *reading_plugins(replay=replay, sla=sla), *extra],
        demo=False,
        api_port=port,
        tokens=token_store(tokens),
    )
    return InterlockThread(interlock).start()
