"""One real Tryton (session) and one Interlock host with the statements plug-in
(module) for the bank statement tests; each test posts its own invoices."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from adapters._canonical import Customer, Invoice
from adapters.erp import ErpInvoice, TrytonAdapter
from adapters.erp.plugin import ErpPlugin, ErpSettings
from adapters.sandbox.tryton import TrytonServer, build_template
from adapters.statements import InboxWatcher
from adapters.statements.plugin import StatementSettings, StatementsPlugin
from collector import EmbeddedBus, Role
from collector.host import Interlock
from collector.process import free_port
from tests._hosts import SeedLineage, reading_settings, token_store
from tracing import Event, System, correlation_id_for

TOKEN = "statements-viewer-token"


@pytest.fixture(scope="session")
def tryton_server() -> Iterator[TrytonServer]:
    build_template()
    server = TrytonServer().start()
    try:
        yield server
    finally:
        server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Bank:
    """The running host, its inbox and the ERP, with helpers to post invoices the way
    quote-to-cash does (an ERP invoice and its ``invoice.posted`` event)."""

    def __init__(
        self, runtime: Interlock, erp: TrytonAdapter, api: httpx.AsyncClient, inbox: Path
    ) -> None:
        self.runtime, self.erp, self.api, self.inbox = runtime, erp, api, inbox

    @property
    def watcher(self) -> InboxWatcher:
        return self.runtime.host.shared("statements.watcher", lambda: None)  # type: ignore[no-any-return]

    async def invoice(self, amount: str) -> tuple[ErpInvoice, str]:
        """A posted ERP invoice for a new order; ``(invoice, correlation_id)``."""
        opp, billing_id = unique("OPP"), f"in_{uuid.uuid4().hex[:14]}"
        customer = Customer(customer_id=unique("ACC"), name="Acme Corp")
        party = await self.erp.ensure_party(customer)
        posted, _ = await self.erp.post_invoice(
            Invoice(
                invoice_id=billing_id,
                customer_id=customer.customer_id,
                currency="USD",
                amount_due=Decimal(amount),
                status="paid",
            ),
            party_id=party,
            description=f"Subscription invoice for {opp}",
            idempotency_key=f"erp.invoice.post:{billing_id}",
        )
        cid = correlation_id_for("crm", "opportunity", opp)
        await self.runtime.host.bus.publish(
            Event(
                correlation_id=cid,
                idempotency_key=f"erp.invoice.post:{billing_id}",
                source=System.INTERLOCK,
                target=System.ERP,
                kind="invoice.posted",
                step="erp.invoice.post",
                entity_type="invoice",
                entity_id=billing_id,
                amount=Decimal(amount),
                currency="USD",
                customer_id=customer.customer_id,
                payload={"order_ref": opp, "erp_invoice_id": posted.id},
            )
        )
        return posted, cid

    def drop(self, name: str, data: bytes) -> Path:
        path = self.inbox / name
        path.write_bytes(data)
        return path

    async def scan(self) -> list[Any]:
        # Events reach the lineage through the bus; the import reads the lineage.
        await self.settle()
        return await self.watcher.scan()

    async def settle(self) -> None:
        bus = self.runtime.host.bus
        if isinstance(bus, EmbeddedBus):
            await bus.drain()
        await self.runtime.collector.flush()

    async def transaction(self, cid: str, *, kind: str, within: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        last: Any = None
        while time.monotonic() < deadline:
            r = await self.api.get(f"/api/v1/transactions/{cid}")
            if r.status_code == 200:
                last = r.json()
                if any(e["kind"] == kind for e in last["events"]):
                    return dict(last)
            await asyncio.sleep(0.1)
        raise AssertionError(f"{cid} never had a {kind} event: {last}")

    async def statement_count(self) -> int:
        return len(await self.erp.rpc.call("model.account.statement.search", [], 0, None, None))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bank(
    tryton_server: TrytonServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Bank]:
    work = tmp_path_factory.mktemp("statements")
    inbox = work / "inbox"
    port = free_port()
    s = reading_settings(port, tokens_file=work / "tokens.json")
    s = s.model_copy(update={"lineage": s.lineage.model_copy(update={"flush_interval": 0.05})})
    s = s.with_section(
        "erp",
        ErpSettings(
            url=tryton_server.url,
            database=tryton_server.database,
            user=tryton_server.user,
            password=SecretStr(tryton_server.password),
        ),
    ).with_section(
        "statements", StatementSettings(inbox=str(inbox), poll_seconds=3600, settle_seconds=0)
    )
    runtime = Interlock(
        s,
        [SeedLineage([]), ErpPlugin(), StatementsPlugin()],
        demo=False,
        api_port=port,
        tokens=token_store({TOKEN: ("tester", Role.VIEWER)}),
    )
    info = await runtime.start()
    erp = TrytonAdapter(
        tryton_server.url, tryton_server.database, tryton_server.user, tryton_server.password
    )
    api = httpx.AsyncClient(
        base_url=info.api_url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        yield Bank(runtime, erp, api, inbox)
    finally:
        await api.aclose()
        await erp.aclose()
        await runtime.stop()


@pytest.fixture
def name() -> Callable[[str], str]:
    return lambda suffix: f"{uuid.uuid4().hex[:8]}.{suffix}"
