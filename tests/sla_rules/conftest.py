"""Fixtures for the SLA tests: a `:memory:` lineage, a row builder and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _sla_helpers import Builder, FakeClock

from sla_rules._memory import DuckDBLineage


@pytest.fixture
async def lineage() -> AsyncIterator[DuckDBLineage]:
    store = DuckDBLineage()
    yield store
    store.close()


@pytest.fixture
def build(lineage: DuckDBLineage) -> Builder:
    return Builder(lineage)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
