"""The collector: the floor every room stands on.

This package root is light (no web framework, no store): the bus and its
handlers, principals and roles, settings, the flow spec, the component and
system-adapter contracts, and the plug-in host. What needs more lives beside it:
:mod:`collector.api` (FastAPI: the control API, role checks, metrics),
:mod:`collector.lineage` (DuckDB: the store and the collector that feeds it),
:mod:`collector.kafka` (aiokafka), :mod:`collector.host` (the builder of a running
Interlock) and :mod:`collector.process` (child processes and free ports).
"""

from ._bus import Bus, EmbeddedBus, Handler, partition_for
from ._bus_factory import make_bus
from ._config import Settings, load_settings
from ._contracts import (
    Component,
    Plugin,
    Stage,
    SystemAdapter,
    SystemInfo,
    SystemPlugin,
    component,
    require_settings,
)
from ._flowspec import Flow, FlowSpec, FlowStep, FlowSteps, PayloadModelConflict
from ._host import INTERLOCK_SYSTEM, Host
from ._plugins import ENTRY_POINT_GROUP, discover, ordered, plugin_sections
from ._roles import ANONYMOUS, Principal, Role, TokenStore, hash_token, load_tokens
from ._token_file import TokenEntry, TokenFile

__all__ = [
    "ANONYMOUS",
    "ENTRY_POINT_GROUP",
    "INTERLOCK_SYSTEM",
    "Bus",
    "Component",
    "EmbeddedBus",
    "Flow",
    "FlowSpec",
    "FlowStep",
    "FlowSteps",
    "Handler",
    "Host",
    "PayloadModelConflict",
    "Plugin",
    "Principal",
    "Role",
    "Settings",
    "Stage",
    "SystemAdapter",
    "SystemInfo",
    "SystemPlugin",
    "TokenEntry",
    "TokenFile",
    "TokenStore",
    "component",
    "discover",
    "hash_token",
    "load_settings",
    "load_tokens",
    "make_bus",
    "ordered",
    "partition_for",
    "plugin_sections",
    "require_settings",
]
