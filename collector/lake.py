"""The lineage in DuckLake (see docs/lineage-lake.md): the store, the lake collector
and its reads. ``python -m collector.lake`` runs one lake collector.

Imported from here, not from the private modules, so the rooms and the benches keep
to the collector's public surface.
"""

from ._lake import (
    EVENTS_TABLE,
    LakeFenced,
    LakeSettings,
    LakeStore,
    PartitionOffset,
    extension_path,
)
from ._lake_ingest import LAKE_GROUP, LakeCollector, lake_schema, main
from ._lake_reads import transaction_events

__all__ = [
    "EVENTS_TABLE",
    "LAKE_GROUP",
    "LakeCollector",
    "LakeFenced",
    "LakeSettings",
    "LakeStore",
    "PartitionOffset",
    "extension_path",
    "lake_schema",
    "main",
    "transaction_events",
]

if __name__ == "__main__":
    main()
