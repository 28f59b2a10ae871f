"""The demo's bank: a statement file every few minutes for the invoices billing collected.

Every ``every_seconds`` it reads the customer invoices the ERP holds as posted
(quote-to-cash posts one per paid billing invoice) that no earlier demo file paid,
and drops a statement paying each by its billing invoice ID in the remittance
information, plus lines no invoice claims: a payment naming an unknown invoice and,
now and then, one naming two invoices at once. Files alternate between MT940 and
camt.053 and are written as ``.name`` then renamed, as an SFTP drop would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from decimal import Decimal
from pathlib import Path

from adapters.erp import TrytonRpc
from tracing import InterlockError

from . import _camt053, _mt940

__all__ = ["DemoBank"]

log = logging.getLogger("interlock.adapters.statements")


class DemoBank:
    """A component writing demo statement files into the inbox."""

    def __init__(
        self,
        rpc: TrytonRpc,
        inbox: Path,
        *,
        account: str,
        currency: str = "USD",
        every_seconds: float = 180.0,
        seed: int | None = None,
    ) -> None:
        self._rpc = rpc
        self._inbox = inbox
        self._account = account
        self._currency = currency
        self._every = every_seconds
        self._random = random.Random(seed)
        self._written: set[int] = set()
        self._count = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="demo bank")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def write_once(self) -> Path | None:
        """One statement file for the invoices collected since the last one."""
        rows = await self._rpc.call(
            "model.account.invoice.search_read",
            [["type", "=", "out"], ["state", "=", "posted"], ["reference", "!=", None]],
            0,
            200,
            [["id", "ASC"]],
            ["reference", "amount_to_pay"],
        )
        fresh = [r for r in rows if int(r["id"]) not in self._written]
        if not fresh:
            return None
        self._count += 1
        lines: list[tuple[Decimal, str, str]] = [
            (r["amount_to_pay"], f"PAY{self._count:04d}{n:03d}", f"Invoice {r['reference']}")
            for n, r in enumerate(fresh, 1)
        ]
        unknown = f"in_unknown{self._random.randrange(10**6):06d}"
        lines.append((Decimal("120.00"), f"PAY{self._count:04d}U01", f"Invoice {unknown}"))
        if len(fresh) >= 2 and self._random.random() < 0.5:
            both = f"Invoices {fresh[0]['reference']} {fresh[1]['reference']}"
            lines.append((Decimal("10.00"), f"PAY{self._count:04d}U02", both))
        self._random.shuffle(lines)
        writer, suffix = (_mt940, "sta") if self._count % 2 else (_camt053, "xml")
        today = datetime.datetime.now(datetime.UTC).date()
        data = writer.write(f"DEMO{self._count:06d}", self._account, self._currency, today, lines)
        name = f"demo-{today:%Y%m%d}-{self._count:04d}.{suffix}"
        hidden, final = self._inbox / f".{name}", self._inbox / name

        def drop() -> None:
            self._inbox.mkdir(parents=True, exist_ok=True)
            hidden.write_bytes(data)
            hidden.rename(final)

        await asyncio.to_thread(drop)
        self._written.update(int(r["id"]) for r in fresh)
        log.info("demo bank wrote %s with %d lines", name, len(lines))
        return final

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.write_once()
            except InterlockError as exc:
                log.warning("demo bank could not write a statement: %s", exc.message)
