"""Fixtures for the dashboard tests: real control APIs on loopback, and AppTest runners.

``sample_api`` / ``empty_api`` / ``locked_api`` / ``bare_api`` are base URLs of real
hosts (the one builder, :class:`collector.host.Interlock`, with the shipped plug-ins over
an in-memory lineage, see ``tests/_hosts.py``), each started once per session:

* ``sample_api``: the sample lineage (``_sample.sample_events``), reads open;
* ``empty_api``: an empty lineage, reads open;
* ``locked_api``: the sample lineage, reads need the viewer token ``LOCKED_TOKEN``
  (the default, ``require_auth_for_reads``);
* ``bare_api``: the sample lineage on a host with the systems and quote-to-cash but no
  replay or SLA plug-in, so it serves no whoami, dead-letter grouping, SLAs or alerts.

``use_api(url)`` points the dashboard at one (``INTERLOCK_API_URL``) with fresh caches;
``run_page(file, **query)`` runs a page with ``AppTest`` and returns it. Page tests for
other pages can use them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import streamlit as st
from _hosts import SeedLineage, reading_plugins, reading_settings, serve, token_store
from _loopback import closed_port_url
from _sample import sample_events
from streamlit.testing.v1 import AppTest

from adapters.billing.plugin import BillingPlugin
from adapters.crm.plugin import CrmPlugin
from adapters.erp.plugin import ErpPlugin
from adapters.flows.plugin import QuoteToCashPlugin
from adapters.support.plugin import SupportPlugin
from collector import Plugin, Role
from collector.host import Interlock, InterlockThread
from collector.process import free_port
from tracing import Event

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"

#: First runs import pandas/Altair inside the script thread; later ones take ~0.1 s.
PAGE_TIMEOUT = 60

#: The viewer token ``locked_api`` (and ``collector_api``) reads need.
LOCKED_TOKEN = "reader-token"


def open_host(
    events: Sequence[Event], *, workdir: Path, plugins: Sequence[Plugin] | None = None
) -> InterlockThread:
    """A started host over a lineage seeded with ``events`` whose reads need no token
    (``serve`` of ``tests/_hosts.py``, with ``require_auth_for_reads`` off); ``plugins``
    replaces the shipped ones. ``stop()`` it after."""
    port = free_port()
    settings = reading_settings(port, tokens_file=workdir / "tokens.json")
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"require_auth_for_reads": False})}
    )
    chosen = reading_plugins() if plugins is None else list(plugins)
    interlock = Interlock(
        settings,
        [SeedLineage(events), *chosen],
        demo=False,
        api_port=port,
        tokens=token_store({}),
    )
    return InterlockThread(interlock).start()


def _running(host: InterlockThread) -> Iterator[str]:
    try:
        yield host.url
    finally:
        host.stop()


@pytest.fixture(scope="session")
def sample_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _running(open_host(sample_events(), workdir=tmp_path_factory.mktemp("sample")))


@pytest.fixture(scope="session")
def empty_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _running(open_host([], workdir=tmp_path_factory.mktemp("empty")))


@pytest.fixture(scope="session")
def locked_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample lineage; reads need the viewer token ``LOCKED_TOKEN``."""
    tokens: Mapping[str, tuple[str, Role]] = {LOCKED_TOKEN: ("vic", Role.VIEWER)}
    host = serve(sample_events(), tokens, workdir=tmp_path_factory.mktemp("locked"))
    yield from _running(host)


@pytest.fixture(scope="session")
def bare_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample lineage on a host without the replay and SLA plug-ins (reads open)."""
    systems_only: list[Plugin] = [
        CrmPlugin(connect=False),
        ErpPlugin(connect=False),
        BillingPlugin(connect=False),
        SupportPlugin(connect=False),
        QuoteToCashPlugin(run=False),
    ]
    host = open_host(sample_events(), workdir=tmp_path_factory.mktemp("bare"), plugins=systems_only)
    yield from _running(host)


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


@pytest.fixture(scope="session")
def collector_token() -> str:
    """The viewer token ``collector_api``'s reads need."""
    return LOCKED_TOKEN


@pytest.fixture(scope="session")
def collector_api(locked_api: str) -> str:
    """The real control API as ``interlock up`` builds it (the one builder and the
    shipped plug-ins, in-memory lineage) seeded with the sample events; reads need
    ``collector_token``. The same host as ``locked_api``."""
    return locked_api
