"""A Salesforce sandbox per session, and a seeding client for it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from adapters.crm import SalesforceAdapter
from adapters.sandbox.salesforce import SalesforceSandbox


class Seeder:
    """Creates records through the sandbox's REST API (as a CRM user would)."""

    def __init__(self, sandbox: SalesforceSandbox) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(
            base_url=f"{sandbox.url}/services/data/v60.0",
            headers={"Authorization": f"Bearer {sandbox.token}"},
            verify=ssl.create_default_context(cafile=sandbox.ca_file),
        )

    def create(self, sobject: str, **fields: Any) -> str:
        answer = self.http.post(f"/sobjects/{sobject}/", json=fields)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def update(self, sobject: str, record_id: str, **fields: Any) -> None:
        answer = self.http.patch(f"/sobjects/{sobject}/{record_id}", json=fields)
        assert answer.status_code == 204, answer.text

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self.http.post(f"{self.sandbox.url}/_sandbox/{path}", json=body or {})
        answer.raise_for_status()
        return answer.json()


@pytest.fixture(scope="session")
def sf_sandbox() -> Iterator[SalesforceSandbox]:
    # A 200-row batch, so the adapter's nextRecordsUrl loop is exercised cheaply.
    with SalesforceSandbox(page_size=200) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def seed(sf_sandbox: SalesforceSandbox) -> Iterator[Seeder]:
    seeder = Seeder(sf_sandbox)
    yield seeder
    seeder.http.close()


@pytest.fixture
async def adapter(sf_sandbox: SalesforceSandbox) -> AsyncIterator[SalesforceAdapter]:
    async with SalesforceAdapter(
        sf_sandbox.url, sf_sandbox.token, verify=sf_sandbox.ca_file, timeout=5.0
    ) as sf:
        yield sf
