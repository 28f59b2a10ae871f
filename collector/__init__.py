"""The collector: event bus, lineage store, ingest, control API, metrics, roles,
settings and the runtime behind the ``interlock`` command."""

from ._api import create_app
from ._auth import ANONYMOUS, Principal, Role, TokenStore, hash_token, load_tokens, require_role
from ._bus import Bus, EmbeddedBus, Handler, partition_for
from ._config import Settings, load_settings
from ._ingest import Collector
from ._lineage import AsyncLineage, BatchOutcome, LineageStore, WriteResult
from ._metrics import Metrics
from ._schema import DDL
from ._waiting import FlowStep, FlowSteps, Waiting, waiting_for, waiting_sql

__all__ = [
    "ANONYMOUS",
    "DDL",
    "AsyncLineage",
    "BatchOutcome",
    "Bus",
    "Collector",
    "EmbeddedBus",
    "FlowStep",
    "FlowSteps",
    "Handler",
    "LineageStore",
    "Metrics",
    "Principal",
    "Role",
    "Settings",
    "TokenStore",
    "Waiting",
    "WriteResult",
    "create_app",
    "hash_token",
    "load_settings",
    "load_tokens",
    "partition_for",
    "require_role",
    "waiting_for",
    "waiting_sql",
]
