"""A Zendesk sandbox per session, and the adapter against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.support import ZendeskAdapter


@pytest.fixture(scope="session")
def zd_sandbox() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox() as sandbox:
        yield sandbox


@pytest.fixture
async def adapter(zd_sandbox: ZendeskSandbox) -> AsyncIterator[ZendeskAdapter]:
    async with ZendeskAdapter(
        zd_sandbox.url, zd_sandbox.email, zd_sandbox.api_token, timeout=5.0
    ) as zd:
        yield zd
