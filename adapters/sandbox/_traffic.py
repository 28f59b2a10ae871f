"""Demo traffic: realistic accounts and opportunities in the CRM sandbox, some
closed won, with faults injected on a schedule, and now and then a price change in the
ERP's catalog effective next month (deals dated today keep today's price).

Everything goes through the sandbox's public Salesforce REST API, as a sales
team's activity would; faults go through the proxies in front of the real ERP
and billing, and duplicate change-feed deliveries through the sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from tracing import InterlockError

from ._faults import FaultProxy

__all__ = ["CATALOG", "FaultPhase", "TrafficGenerator", "TrafficStats"]

log = logging.getLogger(__name__)
_API = "/services/data/v60.0"

#: SKU → (name, monthly list price). The ERP template holds the same products.
CATALOG: dict[str, tuple[str, int]] = {
    "PLAT-STARTER": ("Platform Starter", 49),
    "PLAT-PRO": ("Platform Pro", 199),
    "PLAT-ENT": ("Platform Enterprise", 999),
    "SEATS-ADDON": ("Additional seats", 15),
    "SUPPORT-PREMIUM": ("Premium support", 300),
}
#: A product the CRM sells that the ERP catalogue never mapped.
UNMAPPED_SKU = "LEGACY-GOLD"

_COMPANIES = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Massive Dynamic",
    "Aperture",
    "Black Mesa",
    "Oscorp",
    "Pied Piper",
    "Dunder Mifflin",
    "Gringotts",
    "Monarch",
    "Nakatomi",
    "Virtucon",
    "Zorg",
]
_SUFFIXES = ["Corp", "GmbH", "Ltd", "Inc", "Group", "Holdings", "AG", "SA"]
_COUNTRIES = ["US", "DE", "GB", "FR", "NL", "SE", "CA"]
_FIRST = ["ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken", "linus"]


@dataclass(frozen=True)
class FaultPhase:
    name: str
    target: str  # "erp" | "billing" | "webhooks"
    duration: float
    settings: dict[str, Any] = field(default_factory=dict)


DEFAULT_PHASES = (
    FaultPhase("ERP down", "erp", 25.0, {"down": True}),
    FaultPhase("billing 429 storm", "billing", 15.0, {"rate_limit": 1.0, "retry_after": 2}),
    FaultPhase("ERP slow", "erp", 20.0, {"latency": 1.5}),
    FaultPhase("duplicate webhook deliveries", "webhooks", 30.0, {"duplicate": 1.0}),
)


@dataclass
class TrafficStats:
    accounts: int = 0
    opportunities: int = 0
    closed_won: int = 0
    closed_lost: int = 0
    malformed: int = 0
    duplicates: int = 0
    faults: list[str] = field(default_factory=list)
    errors: int = 0
    price_changes: list[str] = field(default_factory=list)


#: ``set_price(sku, unit_price, effective_from=...)``: the ERP catalog's price change.
PriceChange = Callable[..., Awaitable[str]]


class TrafficGenerator:
    """Creates deals at ``rate_per_minute`` and runs the fault schedule."""

    def __init__(
        self,
        crm_url: str,
        crm_token: str,
        *,
        ca_file: str | None = None,
        rate_per_minute: float = 30.0,
        faults: bool = True,
        proxies: dict[str, FaultProxy] | None = None,
        phases: tuple[FaultPhase, ...] = DEFAULT_PHASES,
        fault_every: float = 75.0,
        seed: int | None = None,
        price_change: PriceChange | None = None,
        price_change_every: int = 20,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=crm_url,
            headers={"Authorization": f"Bearer {crm_token}"},
            verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
            timeout=10.0,
        )
        self._rate = rate_per_minute
        self._faults = faults
        self._proxies = proxies or {}
        self._phases = phases
        self._fault_every = fault_every
        self._rng = random.Random(seed)
        self._price_change = price_change
        self._price_change_every = price_change_every
        self._products: dict[str, str] = {}
        self._won: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = TrafficStats()

    async def _create(self, sobject: str, fields: dict[str, Any]) -> str:
        response = await self._client.post(f"{_API}/sobjects/{sobject}/", json=fields)
        response.raise_for_status()
        return str(response.json()["id"])

    async def seed_catalog(self) -> None:
        """Create the products (idempotent per generator)."""
        if self._products:
            return
        for sku, (name, _) in CATALOG.items():
            self._products[sku] = await self._create(
                "Product2", {"Name": name, "ProductCode": sku, "IsActive": True}
            )
        self._products[UNMAPPED_SKU] = await self._create(
            "Product2",
            {"Name": "Legacy Gold bundle", "ProductCode": UNMAPPED_SKU, "IsActive": True},
        )

    async def create_account(self) -> str:
        name = (
            f"{self._rng.choice(_COMPANIES)} {self._rng.choice(_SUFFIXES)} "
            f"{self._rng.randint(100, 999)}"
        )
        person = self._rng.choice(_FIRST)
        domain = name.split()[0].lower() + ".example"
        account_id = await self._create(
            "Account",
            {
                "Name": name,
                "BillingCountry": self._rng.choice(_COUNTRIES),
                "Phone": f"+1 555 {self._rng.randint(1000000, 9999999)}",
                "Website": f"https://{domain}",
                "Contact_Email__c": f"{person}@{domain}",
            },
        )
        self.stats.accounts += 1
        return account_id

    async def create_deal(
        self, *, account_id: str | None = None, malformed: str | None = None, close: str = "won"
    ) -> str:
        """One opportunity with 1 to 3 lines; ``close`` is "won", "lost" or "open".

        ``malformed``: "missing_amount" (no Amount on the deal) or "unknown_product"
        (a line whose product the ERP does not know).
        """
        await self.seed_catalog()
        account_id = account_id or await self.create_account()
        skus = self._rng.sample(sorted(CATALOG), k=self._rng.randint(1, 3))
        if malformed == "unknown_product":
            skus[0] = UNMAPPED_SKU
        lines = [
            (sku, self._rng.choice([1, 2, 5, 10, 25]), CATALOG.get(sku, ("", 450))[1])
            for sku in skus
        ]
        amount = sum(qty * price for _, qty, price in lines)
        fields: dict[str, Any] = {
            "Name": f"New business {self._rng.randint(1000, 9999)}",
            "AccountId": account_id,
            "StageName": "Prospecting",
            "CloseDate": (date.today() + timedelta(days=14)).isoformat(),
            "CurrencyIsoCode": "USD",
            "Billing_Interval__c": "month",
            "Payment_Terms__c": "NET30",
        }
        if malformed != "missing_amount":
            fields["Amount"] = amount
        opp_id = await self._create("Opportunity", fields)
        for sku, qty, price in lines:
            await self._create(
                "OpportunityLineItem",
                {
                    "OpportunityId": opp_id,
                    "Product2Id": self._products[sku],
                    "Quantity": qty,
                    "UnitPrice": price,
                },
            )
        self.stats.opportunities += 1
        if malformed:
            self.stats.malformed += 1
        if close != "open":
            await self.close(opp_id, won=close == "won")
        return opp_id

    async def close(self, opportunity_id: str, *, won: bool = True) -> None:
        stage = "Closed Won" if won else "Closed Lost"
        response = await self._client.patch(
            f"{_API}/sobjects/Opportunity/{opportunity_id}",
            # A deal closes today: its close date is the day it was won or lost.
            json={"StageName": stage, "CloseDate": date.today().isoformat()},
        )
        response.raise_for_status()
        if won:
            self._won.append(opportunity_id)
            self.stats.closed_won += 1
        else:
            self.stats.closed_lost += 1

    async def redeliver(self, opportunity_id: str) -> None:
        """A duplicate change-feed delivery: the CRM touches the record again."""
        response = await self._client.post(f"/_sandbox/touch/{opportunity_id}")
        response.raise_for_status()
        self.stats.duplicates += 1

    async def _deals(self) -> None:
        tick = 0
        while True:
            tick += 1
            try:
                malformed = None
                if self._faults and tick % 11 == 0:
                    malformed = self._rng.choice(["missing_amount", "unknown_product"])
                close = "lost" if self._rng.random() < 0.15 else "won"
                await self.create_deal(malformed=malformed, close=close)
                if self._faults and tick % 7 == 0 and self._won:
                    await self.redeliver(self._rng.choice(self._won[-20:]))
                if self._price_change is not None and tick % self._price_change_every == 0:
                    await self.change_price()
            except (httpx.HTTPError, InterlockError) as exc:
                self.stats.errors += 1
                log.warning("traffic generator: %s", exc)
            await asyncio.sleep(self._rng.expovariate(self._rate / 60.0))

    async def change_price(self) -> str | None:
        """A catalog manager's price change in the ERP: one product 10% dearer from a day
        next month (each change a day later than the last, so versions never collide)."""
        if self._price_change is None:
            return None
        sku = self._rng.choice(sorted(CATALOG))
        price = (Decimal(CATALOG[sku][1]) * Decimal("1.1")).quantize(Decimal(1))
        first = (date.today().replace(day=1) + timedelta(days=32)).replace(day=1)
        start = first + timedelta(days=len(self.stats.price_changes))
        version = await self._price_change(sku, price, effective_from=start)
        self.stats.price_changes.append(f"{sku} {price} from {start.isoformat()} ({version})")
        log.info("catalog price change: %s to %s from %s", sku, price, start)
        return version

    async def _fault_schedule(self) -> None:
        index = 0
        while True:
            await asyncio.sleep(self._fault_every)
            phase = self._phases[index % len(self._phases)]
            index += 1
            proxy = self._proxies.get(phase.target)
            if proxy is None:
                continue
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            self.stats.faults.append(f"{stamp} {phase.name} for {phase.duration:.0f}s")
            log.info("fault injected: %s for %.0fs", phase.name, phase.duration)
            proxy.set(duration=phase.duration, **phase.settings)

    async def start(self) -> None:
        if self._tasks:
            return
        await self.seed_catalog()
        self._tasks.append(asyncio.create_task(self._deals(), name="traffic:deals"))
        if self._faults:
            self._tasks.append(asyncio.create_task(self._fault_schedule(), name="traffic:faults"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()
