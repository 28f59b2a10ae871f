"""Fixtures for the dashboard tests: fake control APIs on loopback, and AppTest runners.

``sample_api`` / ``empty_api`` / ``locked_api`` are base URLs of fake collectors
(``_fake_api.py``), started once per session. ``use_api(url)`` points the dashboard at
one (``INTERLOCK_API_URL``) with fresh caches; ``run_page(file, **query)`` runs a page
with ``AppTest`` and returns it. Page tests for other pages can use them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from _fake_api import Dataset, build_app, closed_port_url, sample_dataset, serve
from streamlit.testing.v1 import AppTest

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"

#: First runs import pandas/Altair inside the script thread; later ones take ~0.1 s.
PAGE_TIMEOUT = 60


@pytest.fixture(scope="session")
def sample_api() -> Iterator[str]:
    with serve(build_app(sample_dataset())) as url:
        yield url


@pytest.fixture(scope="session")
def empty_api() -> Iterator[str]:
    with serve(build_app(Dataset())) as url:
        yield url


@pytest.fixture(scope="session")
def locked_api() -> Iterator[str]:
    """A collector with ``require_auth_for_reads``: reads need the token ``reader-token``."""
    data = sample_dataset()
    data.read_token = "reader-token"
    with serve(build_app(data)) as url:
        yield url


@pytest.fixture
def down_api() -> str:
    """A URL where nothing listens."""
    return closed_port_url()


@pytest.fixture
def use_api(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Point the dashboard at ``url`` for this test, with empty read caches."""

    def use(url: str) -> str:
        monkeypatch.setenv("INTERLOCK_API_URL", url)
        monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
        st.cache_data.clear()
        st.cache_resource.clear()
        return url

    return use


@pytest.fixture
def run_page() -> Callable[..., AppTest]:
    """Run ``dashboards/<file>`` (e.g. ``"pages/01_Overview.py"``) with query params."""

    def run(file: str, **query: str) -> AppTest:
        at = AppTest.from_file(str(DASHBOARDS / file), default_timeout=PAGE_TIMEOUT)
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()

    return run


#: The viewer token the real collector's API (``collector_api``) knows; reads need one.
COLLECTOR_VIEWER_TOKEN = "collector-viewer-token"


@pytest.fixture(scope="session")
def collector_token() -> str:
    return COLLECTOR_VIEWER_TOKEN


@pytest.fixture(scope="session")
def collector_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real control API as ``interlock up`` builds it (the one builder and the
    shipped plug-ins, in-memory lineage) seeded with the sample events; reads need
    ``collector_token``."""
    from _hosts import serve as serve_host

    from collector import Role

    running = serve_host(
        sample_dataset().events,
        {COLLECTOR_VIEWER_TOKEN: ("vic", Role.VIEWER)},
        workdir=tmp_path_factory.mktemp("collector-api"),
    )
    try:
        yield running.url
    finally:
        running.stop()
