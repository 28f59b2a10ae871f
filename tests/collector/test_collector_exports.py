"""Every name a collector module lists in ``__all__`` exists (keeps ``__all__`` honest)."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "collector._absorb",
    "collector._api",
    "collector._dead_letters",
    "collector._ingest",
    "collector._lineage",
    "collector._lineage_queries",
    "collector._lineage_rows",
    "collector._columns",
    "collector._event_schema",
    "collector._metrics",
    "collector._schema",
    "collector._waiting",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"
