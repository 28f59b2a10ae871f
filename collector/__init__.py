"""The collector: event bus, lineage store, ingest, control API and metrics."""

from ._auth import Principal, Role, TokenStore, hash_token, require_role
from ._bus import Bus, EmbeddedBus, Handler, partition_for
from ._schema import DDL

__all__ = [
    "DDL",
    "Bus",
    "EmbeddedBus",
    "Handler",
    "Principal",
    "Role",
    "TokenStore",
    "hash_token",
    "partition_for",
    "require_role",
]
