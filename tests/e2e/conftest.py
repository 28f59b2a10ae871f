"""The e2e modules' shared landscape: one set of real systems per test session.

Starting Tryton, localstripe and the three sandboxes costs seconds of CPU each time, so
the modules that only need *a* landscape share one (``shared_landscape``, session
scope) and start their own runtime on it per module: a fresh lineage, the module's own
settings, the landscape's API port (billing's webhooks reach whichever runtime is up).
A module's runtime reads the CRM change feed and billing's events only from its own
start (``SHARED_LANDSCAPE_ENV``), so deals of earlier modules are not taken up again.

A landscape is threads and child processes, not bound to an event loop, so modules
keep their own ``loop_scope``. A module that changes the landscape's clock or leaves
faults in force, or needs a landscape of its own, starts its own ``Landscape``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.sandbox import free_port
from adapters.sandbox._landscape import Landscape, LandscapeEndpoints

#: Settings a runtime on the shared landscape needs: start reading at its own start.
SHARED_LANDSCAPE_ENV = {
    "INTERLOCK_CRM_START_LOOKBACK": "0.001",
    "INTERLOCK_BILLING_START_LOOKBACK": "0.001",
}


@dataclass
class SharedLandscape:
    landscape: Landscape
    ep: LandscapeEndpoints
    #: Where the runtime on this landscape must serve its API (billing's webhooks go there).
    api_port: int

    def clear_faults(self) -> None:
        """Every fault proxy back to forwarding (a module's faults end with it)."""
        for proxy in (
            self.landscape.erp_proxy,
            self.landscape.billing_proxy,
            self.landscape.webhook_proxy,
        ):
            if proxy is not None:
                proxy.clear()


@contextmanager
def landscape_for_runtimes(workdir: Path) -> Iterator[SharedLandscape]:
    """A landscape whose webhooks reach the runtime serving on its ``api_port``."""
    api_port = free_port()
    landscape = Landscape(workdir, webhook_url=f"http://127.0.0.1:{api_port}/webhooks/stripe")
    ep = landscape.start()
    try:
        yield SharedLandscape(landscape, ep, api_port)
    finally:
        landscape.stop()


@pytest.fixture(scope="session")
def shared_landscape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedLandscape]:
    """One landscape for the session's e2e modules (started on first use). A module can
    define its own ``shared_landscape`` fixture (module scope, with
    :func:`landscape_for_runtimes`) to keep its desks' runs apart from other modules."""
    with landscape_for_runtimes(tmp_path_factory.mktemp("shared-landscape")) as shared:
        yield shared
