"""The contracts the rooms build on: components, system adapters, systems and plug-ins.

A plug-in installs pieces into the :class:`~collector.Host`: system adapters with
their :class:`SystemInfo`, flows, components (anything with ``start``/``stop``) at a
:class:`Stage`, API routers and health checks. The host starts components in stage
order and stops them in reverse, so no composition orders them by hand.

Light on purpose: nothing here imports a web framework or a store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel

from tracing import ConfigError

if TYPE_CHECKING:
    from ._host import Host

__all__ = [
    "Component",
    "Plugin",
    "Stage",
    "SystemAdapter",
    "SystemInfo",
    "SystemPlugin",
    "component",
    "require_settings",
]


class Stage(IntEnum):
    """When a component starts; components stop in the reverse order.

    ``LANDSCAPE`` holds what must outlive everything (the demo's systems);
    ``SUBSCRIBE`` what must subscribe before the bus consumes; ``BUS`` the bus and
    the collector; ``SERVICE`` what reads the lineage (SLA engine, alert sender);
    ``API`` the control API; ``INGRESS`` what brings events in (pollers, webhook
    catch-up); ``TRAFFIC`` the demo's traffic generator.
    """

    LANDSCAPE = 0
    SUBSCRIBE = 10
    BUS = 20
    SERVICE = 30
    API = 40
    INGRESS = 50
    TRAFFIC = 70


@runtime_checkable
class Component(Protocol):
    """Something the host starts and stops."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class _Hooks:
    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[None]] | None,
        stop: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self.name = name
        self._start = start
        self._stop = stop

    async def start(self) -> None:
        if self._start is not None:
            await self._start()

    async def stop(self) -> None:
        if self._stop is not None:
            await self._stop()

    def __repr__(self) -> str:
        return f"<component {self.name}>"


def component(
    name: str,
    *,
    start: Callable[[], Awaitable[None]] | None = None,
    stop: Callable[[], Awaitable[None]] | None = None,
) -> Component:
    """A component from two coroutine functions (either may be left out)."""
    return _Hooks(name, start, stop)


@runtime_checkable
class SystemAdapter(Protocol):
    """A client of one business system: its name, a health probe and ``aclose``."""

    system: str

    async def health(self) -> bool: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """A system as people see it: its lane in the transaction explorer (lower is
    further left), its label and the vendor behind it."""

    name: str
    label: str
    vendor: str = ""
    lane: int = 50

    def as_dict(self) -> dict[str, str | int]:
        return {"name": self.name, "label": self.label, "vendor": self.vendor, "lane": self.lane}


@runtime_checkable
class Plugin(Protocol):
    """One room's contribution to Interlock.

    ``name`` is unique; ``after`` names plug-ins to install first when present (a
    soft order: a missing one is skipped); ``sections`` are the settings sections
    the plug-in owns (``[erp]`` → its model), validated when settings load.
    ``install`` adds the plug-in's pieces to the host; a missing setting or a
    missing system it needs raises :class:`tracing.ConfigError`.
    """

    @property
    def name(self) -> str: ...

    @property
    def after(self) -> tuple[str, ...]: ...

    @property
    def sections(self) -> Mapping[str, type[BaseModel]]: ...

    async def install(self, host: Host) -> None: ...


class SystemPlugin:
    """The base of a plug-in that installs one business system.

    A subclass names its ``info`` and its settings ``model`` (the section is the
    system's name) and implements ``open(host, settings)``: build the adapter (and
    register what comes with it: an ingress, a webhook route) and return it. With
    ``connect=False`` the system is declared without being connected (a host that only
    reads a lineage: the dashboard tests, the benches).
    """

    info: SystemInfo
    model: type[BaseModel]
    after: tuple[str, ...] = ("demo",)

    def __init__(self, *, connect: bool = True) -> None:
        self.connect = connect

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def sections(self) -> Mapping[str, type[BaseModel]]:
        return {self.info.name: self.model}

    async def open(self, host: Host, settings: Any) -> SystemAdapter:
        raise NotImplementedError

    async def install(self, host: Host) -> None:
        if not self.connect:
            host.add_system(self.info)
            return
        adapter = await self.open(host, host.section(self.info.name, self.model))
        host.add_system(self.info, adapter)


def require_settings(section: str, **values: Any) -> tuple[Any, ...]:
    """``values`` in order, when every one is set; else a :class:`ConfigError` naming
    the first missing ``section.field`` (and the others) — what a system plug-in
    raises when neither configuration nor the demo landscape gave it a value."""
    missing = [f"{section}.{name}" for name, value in values.items() if not value]
    if missing:
        raise ConfigError(
            missing[0],
            "is required when the demo landscape is off "
            f"(also missing: {', '.join(missing[1:]) or 'nothing else'})",
        )
    return tuple(values.values())
