"""The ERP's catalog: Tryton products and the dated lines of one price list.

The ERP owns products and prices. A product is a ``product.product`` (its code is the
SKU); its price versions are the lines of the catalog price list
(``product_price_list_dates`` gives each line a start and an end date), read in the
list's matching order (sequence, then ID), so the first version in force on a date is
the price Tryton itself would compute on that date. A retired product is an inactive
one, or one whose every price version ended.

Change detection reads ``write_date`` of the products, their templates and the price
list's lines (Tryton stamps the transaction's start: callers overlap and de-duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tracing import MappingError, RemoteError, ValidationError

from .._canonical import Product, ProductPrice
from ..erp import TrytonRpc

__all__ = ["TrytonCatalog"]

SYSTEM = "erp"
#: Active and inactive records alike: a retired product must still be read.
_ANY_ACTIVE = ["active", "in", [True, False]]
_PAGE = 500


class TrytonCatalog:
    """The catalog in one Tryton database, through the ERP adapter's JSON-RPC channel.

    Example::

        catalog = TrytonCatalog(erp.rpc)
        product = (await catalog.products(["PLAT-PRO"]))["PLAT-PRO"]
        price = product.price_on(order_date)
    """

    system = SYSTEM

    def __init__(self, rpc: TrytonRpc, *, price_list: str = "Catalog", currency: str = "USD"):
        self._rpc = rpc
        self._price_list_name = price_list
        self._currency = currency
        self._price_list: int | None = None
        self._names: dict[tuple[str, str], bool] = {}

    async def price_list_id(self) -> int:
        if self._price_list is None:
            ids = await self._rpc.call(
                "model.product.price_list.search",
                [["name", "=", self._price_list_name]],
                0,
                1,
                [["id", "ASC"]],
            )
            if not ids:
                raise MappingError(
                    f"the ERP has no price list {self._price_list_name!r}",
                    field="price_list",
                    system=SYSTEM,
                )
            self._price_list = int(ids[0])
        return self._price_list

    # -- reading ---------------------------------------------------------------------

    async def products(self, skus: Sequence[str] | None = None) -> dict[str, Product]:
        """The products with these SKUs (all products with ``None``), retired ones
        included, each with its price versions."""
        domain: list[Any] = [_ANY_ACTIVE]
        if skus is not None:
            wanted = sorted(set(skus))
            if not wanted:
                return {}
            domain.append(["code", "in", wanted])
        rows = await self._search(
            "product.product",
            domain,
            ["code", "name", "active", "salable", "write_date", "template.write_date"],
        )
        if not rows:
            return {}
        by_id = {int(r["id"]): r for r in rows if r.get("code")}
        lines = await self._search(
            "product.price_list.line",
            [
                ["price_list", "=", await self.price_list_id()],
                ["product", "in", sorted(by_id)],
            ],
            ["product", "formula", "start_date", "end_date", "sequence", "write_date"],
            order=[["sequence", "ASC NULLS FIRST"], ["id", "ASC"]],
        )
        prices: dict[int, list[ProductPrice]] = {pid: [] for pid in by_id}
        stamps: dict[int, list[datetime]] = {
            pid: [_utc(r.get("write_date")), _utc((r.get("template.") or {}).get("write_date"))]
            for pid, r in by_id.items()
        }
        for line in lines:
            pid = int(line["product"])
            prices[pid].append(
                ProductPrice(
                    version=f"pll-{line['id']}",
                    unit_price=_formula_price(line["formula"], line["id"]),
                    currency=self._currency,
                    effective_from=line.get("start_date"),
                    effective_to=line.get("end_date"),
                )
            )
            stamps[pid].append(_utc(line.get("write_date")))
        out: dict[str, Product] = {}
        for pid, row in by_id.items():
            out[str(row["code"])] = Product(
                sku=str(row["code"]),
                name=str(row["name"]),
                active=bool(row["active"]) and bool(row.get("salable", True)),
                prices=prices[pid],
                catalog_version=max(stamps[pid]).isoformat(),
            )
        return out

    async def changes(self, since: datetime) -> list[tuple[str, datetime]]:
        """``(sku, written)`` for every product, template or catalog price line written at
        or after ``since`` (aware), oldest first."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        naive = since.astimezone(UTC).replace(tzinfo=None)  # Tryton keeps naive UTC
        found: list[tuple[str, datetime]] = []
        for row in await self._search(
            "product.product", [_ANY_ACTIVE, ["write_date", ">=", naive]], ["code", "write_date"]
        ):
            found.append((str(row.get("code") or ""), _utc(row["write_date"])))
        for row in await self._search(
            "product.template",
            [_ANY_ACTIVE, ["write_date", ">=", naive]],
            ["products.code", "write_date"],
        ):
            for product in row.get("products.") or []:
                found.append((str(product.get("code") or ""), _utc(row["write_date"])))
        for row in await self._search(
            "product.price_list.line",
            [["price_list", "=", await self.price_list_id()], ["write_date", ">=", naive]],
            ["product.code", "write_date"],
        ):
            code = (row.get("product.") or {}).get("code")
            found.append((str(code or ""), _utc(row["write_date"])))
        return sorted((c for c in found if c[0]), key=lambda c: (c[1], c[0]))

    async def starting(self, after: date, until: date) -> list[str]:
        """SKUs with a catalog price version starting in ``(after, until]``: versions that
        came into force since the last look, though nothing was written then."""
        rows = await self._search(
            "product.price_list.line",
            [
                ["price_list", "=", await self.price_list_id()],
                ["start_date", ">", after],
                ["start_date", "<=", until],
            ],
            ["product.code"],
        )
        return sorted({str((r.get("product.") or {}).get("code")) for r in rows} - {"None"})

    async def has_tax(self, name: str) -> bool:
        """Whether the ERP holds an active tax of this name (the country's tax setup)."""
        return await self._exists("account.tax", name)

    async def has_payment_term(self, name: str) -> bool:
        """Whether the ERP knows a payment term of this name."""
        return await self._exists("account.invoice.payment_term", name)

    async def _exists(self, model: str, name: str) -> bool:
        key = (model, name)
        if not self._names.get(key):
            ids = await self._rpc.call(
                f"model.{model}.search", [["name", "=", name]], 0, 1, [["id", "ASC"]]
            )
            self._names[key] = bool(ids)
        return self._names[key]

    # -- writing (the ERP's own catalog maintenance: the demo and the tests) -------------

    async def set_price(self, sku: str, unit_price: Decimal, *, effective_from: date) -> str:
        """A new price version from ``effective_from``: the versions still open on that
        day end the day before, and a new open-ended line starts. Its version ID."""
        product_id = await self._product_id(sku)
        list_id = await self.price_list_id()
        open_lines = await self._search(
            "product.price_list.line",
            [
                ["price_list", "=", list_id],
                ["product", "=", product_id],
                ["OR", ["end_date", "=", None], ["end_date", ">=", effective_from]],
            ],
            ["start_date"],
        )
        for line in open_lines:
            start = line.get("start_date")
            if start is not None and start >= effective_from:
                raise ValidationError(
                    f"{sku} already has a price version from {start}", field="effective_from"
                )
            await self._rpc.call(
                "model.product.price_list.line.write",
                [int(line["id"])],
                {"end_date": effective_from - timedelta(days=1)},
            )
        (line_id,) = await self._rpc.call(
            "model.product.price_list.line.create",
            [
                {
                    "price_list": list_id,
                    "product": product_id,
                    "formula": str(unit_price),
                    "start_date": effective_from,
                }
            ],
        )
        return f"pll-{line_id}"

    async def retire(self, sku: str) -> None:
        """Retire a product: inactive in the ERP (its history stays)."""
        await self._rpc.call(
            "model.product.product.write", [await self._product_id(sku)], {"active": False}
        )

    async def _product_id(self, sku: str) -> int:
        ids = await self._rpc.call(
            "model.product.product.search", [_ANY_ACTIVE, ["code", "=", sku]], 0, 1, [["id", "ASC"]]
        )
        if not ids:
            raise MappingError(f"the ERP has no product {sku!r}", field="sku", system=SYSTEM)
        return int(ids[0])

    async def _search(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        order: list[list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = await self._rpc.call(
                f"model.{model}.search_read",
                domain,
                len(rows),
                _PAGE,
                order or [["id", "ASC"]],
                fields,
            )
            rows += page
            if len(page) < _PAGE:
                return rows


def _formula_price(formula: Any, line_id: Any) -> Decimal:
    """A catalog line's price. Catalog lines carry a fixed price; a computed formula
    (``unit_price * 0.9``) has no one price to publish and is a mapping error."""
    try:
        value = Decimal(str(formula).strip())
    except InvalidOperation as exc:
        raise MappingError(
            f"price list line {line_id} has the formula {formula!r}, not a fixed price",
            field="formula",
            system=SYSTEM,
        ) from exc
    if not value.is_finite() or value < 0:
        raise MappingError(f"price list line {line_id} has the price {formula!r}", system=SYSTEM)
    return value


def _utc(value: Any) -> datetime:
    if value is None:
        return datetime(1970, 1, 1, tzinfo=UTC)
    if not isinstance(value, datetime):
        raise RemoteError(f"expected a datetime from Tryton, got {value!r}", system=SYSTEM)
    return value.replace(tzinfo=UTC)
