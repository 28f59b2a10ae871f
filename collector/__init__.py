"""The collector: event bus, lineage store, ingest, control API, metrics, roles,
settings and the runtime behind the ``interlock`` command."""

from ._api import create_app
from ._api_docs import MAX_OFFSET, IsoDateTime, not_found, ok, responses
from ._auth import (
    ANONYMOUS,
    ControlRoute,
    Principal,
    Role,
    RoleCheck,
    TokenStore,
    hash_token,
    load_tokens,
    require_role,
)
from ._bus import Bus, EmbeddedBus, Handler, partition_for
from ._config import Settings, load_settings
from ._ingest import Collector
from ._lineage import AsyncLineage, BatchOutcome, LineageStore, WriteResult
from ._metrics import Metrics
from ._problem import PROBLEM_JSON, Problem, ProblemField
from ._schema import DDL
from ._token_file import TokenEntry, TokenFile
from ._waiting import FlowStep, FlowSteps, Waiting, waiting_for, waiting_sql

__all__ = [
    "ANONYMOUS",
    "DDL",
    "MAX_OFFSET",
    "PROBLEM_JSON",
    "AsyncLineage",
    "BatchOutcome",
    "Bus",
    "Collector",
    "ControlRoute",
    "EmbeddedBus",
    "FlowStep",
    "FlowSteps",
    "Handler",
    "IsoDateTime",
    "LineageStore",
    "Metrics",
    "Principal",
    "Problem",
    "ProblemField",
    "Role",
    "RoleCheck",
    "Settings",
    "TokenEntry",
    "TokenFile",
    "TokenStore",
    "Waiting",
    "WriteResult",
    "create_app",
    "hash_token",
    "load_settings",
    "load_tokens",
    "not_found",
    "ok",
    "partition_for",
    "require_role",
    "responses",
    "waiting_for",
    "waiting_sql",
]
