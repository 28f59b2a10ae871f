"""Sandboxes for the vendor-client tests: one of each per session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from simple_salesforce.api import Salesforce

from adapters.sandbox.salesforce import SalesforceSandbox
from adapters.sandbox.zendesk import ZendeskSandbox

# Small query batches, so paging (Salesforce's is 2000 rows) is cheap to cross.
PAGE_SIZE = 200


@pytest.fixture(scope="session")
def sf_sandbox() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(page_size=PAGE_SIZE) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def zd_sandbox() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sf(sf_sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    """simple-salesforce in session_id + instance_url mode, trusting the sandbox CA.

    Typed ``Any``: the client's dynamic ``sf.Account`` attributes defeat its own stubs.
    """
    # requests lets REQUESTS_CA_BUNDLE override a session's verify, so set the env.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sf_sandbox.ca_file)
    return Salesforce(session_id=sf_sandbox.token, instance_url=sf_sandbox.url, version="60.0")


@pytest.fixture
def zenpy_client(zd_sandbox: ZendeskSandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    from zenpy import Zenpy

    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", f"127.0.0.1:{zd_sandbox.port}")
    return Zenpy(
        subdomain="sandbox",
        email=zd_sandbox.email,
        token=zd_sandbox.api_token,
        disable_cache=True,
    )
