"""Silent faults for the demo: changes made behind Interlock's back, which no event
reports and only reconciliation finds.

Every ``every`` seconds, in turn: a clerk keys a won deal's sale into the ERP a second
time; a clerk keys an order into the ERP with no deal behind it; a customer's
subscription is cancelled in billing; billing's webhooks are lost for a while (billing's
catch-up brings them in later, so reconciliation sees the gap only until then).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

import httpx

from adapters.erp import TrytonRpc

from ._faults import FaultProxy

__all__ = ["SilentFaults"]

log = logging.getLogger(__name__)


class SilentFaults:
    """A demo component (``start``/``stop``); ``done`` lists what it did, with times."""

    def __init__(
        self,
        *,
        erp: tuple[str, str, str, str],
        billing_url: str,
        billing_key: str,
        webhooks: FaultProxy | None,
        every: float = 150.0,
        webhook_outage: float = 20.0,
    ) -> None:
        self._erp_args = erp
        self._billing_url = billing_url.rstrip("/")
        self._billing_key = billing_key
        self._webhooks = webhooks
        self._every = every
        self._outage = webhook_outage
        self._task: asyncio.Task[None] | None = None
        self.done: list[str] = []

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="demo:silent-faults")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        url, database, user, password = self._erp_args
        async with (
            httpx.AsyncClient(timeout=15) as erp_client,
            httpx.AsyncClient(
                base_url=self._billing_url, auth=(self._billing_key, ""), timeout=15
            ) as billing,
        ):
            rpc = TrytonRpc(url, database, user, password, client=erp_client)
            faults: list[Callable[[], Awaitable[str | None]]] = [
                lambda: self._second_sale(rpc),
                lambda: self._hand_keyed_order(rpc),
                lambda: self._cancel_subscription(billing),
                self._lose_webhooks,
            ]
            turn = 0
            while True:
                await asyncio.sleep(self._every)
                fault = faults[turn % len(faults)]
                turn += 1
                try:
                    what = await fault()
                except Exception as exc:  # a demo fault must never stop the demo
                    log.warning("silent fault failed: %s", exc)
                    continue
                if what:
                    stamp = datetime.now(UTC).strftime("%H:%M:%S")
                    self.done.append(f"{stamp} {what}")
                    log.info("silent fault: %s", what)

    async def _recent_sale(self, rpc: TrytonRpc) -> dict[str, object] | None:
        rows = await rpc.call(
            "model.sale.sale.search_read",
            [["state", "in", ["confirmed", "processing", "done"]], ["reference", "!=", None]],
            0,
            1,
            [["id", "DESC"]],
            ["reference", "number"],
        )
        return rows[0] if rows else None

    async def _copy(self, rpc: TrytonRpc, sale_id: int, reference: str) -> int:
        values = {"reference": reference, "sale_date": date.today()}
        (copy,) = await rpc.call("model.sale.sale.copy", [sale_id], values)
        return int(copy)

    async def _second_sale(self, rpc: TrytonRpc) -> str | None:
        sale = await self._recent_sale(rpc)
        if sale is None:
            return None
        copy = await self._copy(rpc, int(str(sale["id"])), str(sale["reference"]))
        return f"ERP: sale of deal {sale['reference']} keyed in again by hand (sale {copy})"

    async def _hand_keyed_order(self, rpc: TrytonRpc) -> str | None:
        sale = await self._recent_sale(rpc)
        if sale is None:
            return None
        copy = await self._copy(rpc, int(str(sale["id"])), "")
        return f"ERP: order keyed in by hand with no deal (sale {copy})"

    async def _cancel_subscription(self, billing: httpx.AsyncClient) -> str | None:
        page = (await billing.get("/v1/subscriptions", params={"limit": 20})).json()
        live = [s for s in page.get("data") or [] if s.get("status") == "active"]
        if not live:
            return None
        sub = live[-1]
        (await billing.delete(f"/v1/subscriptions/{sub['id']}")).raise_for_status()
        ref = (sub.get("metadata") or {}).get("order_ref", "?")
        return f"billing: subscription {sub['id']} of deal {ref} cancelled by hand"

    async def _lose_webhooks(self) -> str | None:
        if self._webhooks is None:
            return None
        self._webhooks.set(duration=self._outage, down=True)
        return f"billing webhooks lost for {self._outage:.0f}s"
