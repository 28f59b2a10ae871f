"""The bank statements plug-in: the ``[statements]`` section, the inbox watcher,
the batches' API and, in the demo, a bank writing statement files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from adapters.erp import TrytonAdapter
from collector import Host, Stage, SystemInfo, component

from ._api import statements_router
from ._demo import DemoBank
from ._importer import SOURCE, Importer
from ._ledger import StatementLedger
from ._store import BatchStore
from ._watcher import InboxWatcher

__all__ = ["INFO", "StatementSettings", "StatementsPlugin", "plugin"]


class StatementSettings(BaseModel):
    """``[statements]``: where bank files arrive and how they are booked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The inbox folder (a mounted bank or SFTP drop); unset, no watcher runs, except
    #: in the demo (``<demo.workdir>/statements/inbox``).
    inbox: str | None = None
    #: Seconds between two scans of the inbox.
    poll_seconds: float = Field(default=5.0, gt=0)
    #: A file is taken once unchanged this many seconds (a copy still running is not).
    settle_seconds: float = Field(default=2.0, ge=0)
    #: The ERP account code that holds money no invoice claims.
    suspense_account: str = "1.1.9"
    #: The demo bank: the company's account number its files name.
    demo_account: str = "NL91ABNA0417164300"
    #: The demo bank: seconds between two statement files.
    demo_every_seconds: float = Field(default=180.0, gt=0)


#: The bank as the explorer shows it: between the ERP and billing.
INFO = SystemInfo(SOURCE, "Bank", "MT940 / camt.053 files", lane=25)


class StatementsPlugin:
    """Installs bank statement import (``watch=False``: the API over a lineage only)."""

    name = "statements"
    after = ("demo", "erp", "quote_to_cash")
    sections: Mapping[str, type[BaseModel]] = {"statements": StatementSettings}

    def __init__(self, *, watch: bool = True) -> None:
        self.watch = watch

    async def install(self, host: Host) -> None:
        s = host.section("statements", StatementSettings)
        store = BatchStore(host.lineage)
        host.add_system(INFO)
        host.add_component(component("statement batches", start=store.open), Stage.SERVICE)
        host.add_router(statements_router(store))
        inbox = s.inbox
        if inbox is None and host.demo:
            inbox = str(Path(host.settings.demo.workdir) / "statements" / "inbox")
        if not self.watch or inbox is None:
            return
        erp = cast(TrytonAdapter, host.adapter("erp"))
        ledger = StatementLedger(erp.rpc, suspense_account=s.suspense_account)
        watcher = InboxWatcher(
            Importer(ledger, store, host.bus),
            Path(inbox),
            poll_seconds=s.poll_seconds,
            settle_seconds=s.settle_seconds,
        )
        host.shared("statements.watcher", lambda: watcher)
        host.add_component(watcher, Stage.INGRESS, name="statements inbox")
        if host.demo:
            bank = DemoBank(
                erp.rpc,
                Path(inbox),
                account=s.demo_account,
                every_seconds=s.demo_every_seconds,
                seed=host.settings.demo.seed,
            )
            host.add_component(bank, Stage.TRAFFIC, name="demo bank")


plugin = StatementsPlugin()
