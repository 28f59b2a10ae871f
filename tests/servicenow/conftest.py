"""A ServiceNow sandbox per session, pysnc against it, and the adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pysnc import ServiceNowClient

from adapters.sandbox.servicenow import ServiceNowSandbox
from adapters.servicenow import ServiceNowAdapter


@pytest.fixture(scope="session")
def sn_sandbox() -> Iterator[ServiceNowSandbox]:
    with ServiceNowSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def snc(sn_sandbox: ServiceNowSandbox, monkeypatch: pytest.MonkeyPatch) -> ServiceNowClient:
    """pysnc over Basic auth, trusting the sandbox's self-signed certificate."""
    # requests lets REQUESTS_CA_BUNDLE override a session's verify, so set the env too.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sn_sandbox.ca_file)
    return ServiceNowClient(
        sn_sandbox.url, (sn_sandbox.username, sn_sandbox.password), verify=sn_sandbox.ca_file
    )


@pytest.fixture
async def adapter(sn_sandbox: ServiceNowSandbox) -> AsyncIterator[ServiceNowAdapter]:
    async with ServiceNowAdapter(
        sn_sandbox.url,
        username=sn_sandbox.username,
        password=sn_sandbox.password,
        ca_file=sn_sandbox.ca_file,
        timeout=5.0,
    ) as sn:
        yield sn
