"""The ERP adapter: canonical customers, orders and invoices into Tryton.

Idempotency. Tryton's JSON-RPC carries no idempotency header and its context is
not stored with the record, so every write is idempotent by a natural key:

- a party by its code (= ``Customer.customer_id``),
- a sale by its ``reference`` (= ``SalesOrder.order_ref``, the CRM opportunity),
- a customer invoice by its ``reference`` (= ``Invoice.invoice_id``, the billing ID).

Each write searches by that key first and creates only when nothing is found.
Callers still pass an ``idempotency_key``: it is logged with the call so the
lineage can tie a write to the event that asked for it.

Concurrency. Within one process, calls for the same key are serialised by a
lock shared by every adapter on the event loop (``_locks.keyed_lock``). Across
processes the search-then-create can still race; the loser is detected right
after its create (two records with one reference) and deletes its own draft, so
both callers converge on the oldest record. A crash between the create and
that check can leave a duplicate draft behind, visible by searching the
reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx

from adapters._canonical import Customer, Invoice, SalesOrder
from adapters._http import HttpAdapter
from adapters.erp._locks import keyed_lock
from adapters.erp._models import ErpInvoice, ErpSale
from adapters.erp._rpc import SYSTEM, CreditHold, TrytonRpc
from tracing import ConflictError, IntegrationError, MappingError, RemoteError, ValidationError

__all__ = ["TrytonAdapter"]

log = logging.getLogger("interlock.adapters.erp")

_SALE_FIELDS = [
    "number",
    "reference",
    "state",
    "total_amount",
    "currency.code",
    "party",
    "invoice_method",
]
_INVOICE_FIELDS = ["number", "reference", "state", "total_amount"]
_ID_ASC = [["id", "ASC"]]
#: Rows (or IDs in an ``in`` domain) per call when reading many.
_PAGE = 500


class TrytonAdapter(HttpAdapter):
    """Async client of one Tryton database over JSON-RPC.

    Example::

        async with TrytonAdapter(url, "erp", "admin", password) as erp:
            sale, created = await erp.create_sale(order, idempotency_key=key)
            sale = await erp.confirm_sale(sale.id)
    """

    #: The system this adapter speaks to (collector.SystemAdapter).
    system = SYSTEM

    def __init__(
        self,
        url: str,
        database: str,
        user: str,
        password: str,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(client, timeout=timeout)
        self._rpc = TrytonRpc(url, database, user, password, client=self._client)
        self._scope = (url.rstrip("/"), database)
        self._ids: dict[tuple[str, str], int] = {}  # cached look-ups: (kind, key) -> id

    @property
    def rpc(self) -> TrytonRpc:
        """The logged-in JSON-RPC channel, for a room that speaks to a Tryton module
        this adapter does not wrap (bank statements)."""
        return self._rpc

    def _repr_args(self) -> str:
        return f"{self._scope[0]!r}, {self._scope[1]!r}"

    async def health(self) -> bool:
        """True when the ERP answers an authenticated call."""
        try:
            await self._rpc.call("model.res.user.get_preferences", True)
        except IntegrationError as exc:
            log.warning("erp health check failed: %s", exc.message)
            return False
        return True

    # -- parties ---------------------------------------------------------------------------

    async def ensure_party(self, customer: Customer) -> int:
        """The party whose code is ``customer.customer_id``, created if missing.

        The CRM's name seeds a new party only: the ERP owns the legal name (and the
        credit limit), so an existing party's name is never overwritten here; a
        change to it goes through the customer master (docs/customer-master.md),
        with approval. An invoice address is added when the party has none.
        """
        async with keyed_lock((*self._scope, "party", customer.customer_id)):
            found = await self._party_by_code(customer.customer_id)
            if found:
                party = found[0]
                party_id = int(party["id"])
                if not party["addresses"]:
                    await self._rpc.call(
                        "model.party.address.create", [{"party": party_id, "invoice": True}]
                    )
                return party_id
            values: dict[str, Any] = {
                "code": customer.customer_id,
                "name": customer.name,
                "addresses": [["create", [{"invoice": True}]]],
            }
            mechanisms = [
                {"type": kind, "value": value}
                for kind, value in (("email", customer.email), ("phone", customer.phone))
                if value
            ]
            if mechanisms:
                values["contact_mechanisms"] = [["create", mechanisms]]
            try:
                (party_id,) = await self._rpc.call("model.party.party.create", [values])
            except ValidationError:
                # Another writer (a second Interlock process, a clerk keying the customer
                # in) created the party between our search and our create: the code is
                # unique in Tryton, so theirs is the customer's party.
                raced = await self._party_by_code(customer.customer_id)
                if not raced:
                    raise
                log.info("erp party %s for customer %s was created by another writer",
                         raced[0]["id"], customer.customer_id)  # fmt: skip
                return int(raced[0]["id"])
            log.info("erp party %s created for customer %s", party_id, customer.customer_id)
            return int(party_id)

    async def _party_by_code(self, code: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._rpc.call(
            "model.party.party.search_read", [["code", "=", code]], 0, 1, _ID_ASC, ["addresses"]
        )
        return found

    async def set_credit_limit(self, party_id: int, amount: Decimal | None) -> None:
        """Set (or with ``None`` remove) the party's credit limit in the company."""
        await self._rpc.call("model.party.party.write", [party_id], {"credit_limit_amount": amount})

    async def credit_position(self, party_id: int) -> tuple[Decimal, Decimal | None]:
        """The party's credit exposure (Tryton's ``credit_amount``: receivables and the
        confirmed sales not yet invoiced) and its credit limit (``None``: no limit)."""
        rows = await self._rpc.call(
            "model.party.party.read", [party_id], ["credit_amount", "credit_limit_amount"]
        )
        if not rows:
            raise ValidationError(f"no ERP party {party_id}", field="party_id", system=SYSTEM)
        row = rows[0]
        limit = row.get("credit_limit_amount")
        return Decimal(str(row.get("credit_amount") or 0)), (
            None if limit is None else Decimal(str(limit))
        )

    # -- sales -----------------------------------------------------------------------------

    async def find_sale(self, reference: str) -> ErpSale | None:
        """The oldest sale with this reference, if any."""
        found = await self._rpc.call(
            "model.sale.sale.search_read",
            [["reference", "=", reference]],
            0,
            1,
            _ID_ASC,
            _SALE_FIELDS,
        )
        return _sale(found[0]) if found else None

    async def sales(
        self, references: Sequence[str] = (), *, dated: tuple[date, date] | None = None
    ) -> list[ErpSale]:
        """Every sale with one of ``references``, and (with ``dated``) every sale dated in
        ``[start, end)``, whatever its reference: what the ERP holds, duplicates and
        hand-keyed orders included. Read in pages of ``_PAGE``."""
        found: dict[int, ErpSale] = {}
        refs = sorted(set(references))
        for start in range(0, len(refs), _PAGE):
            for row in await self._search_all(
                "sale.sale", [["reference", "in", refs[start : start + _PAGE]]], _SALE_FIELDS
            ):
                found[int(row["id"])] = _sale(row)
        if dated is not None:
            domain = [["sale_date", ">=", dated[0]], ["sale_date", "<", dated[1]]]
            for row in await self._search_all("sale.sale", domain, _SALE_FIELDS):
                found[int(row["id"])] = _sale(row)
        return [found[k] for k in sorted(found)]

    async def invoices(self, references: Sequence[str]) -> list[ErpInvoice]:
        """Every customer invoice with one of ``references`` (billing invoice IDs)."""
        found: list[ErpInvoice] = []
        refs = sorted(set(references))
        for start in range(0, len(refs), _PAGE):
            domain = [["reference", "in", refs[start : start + _PAGE]], ["type", "=", "out"]]
            found += [
                _invoice(r)
                for r in await self._search_all("account.invoice", domain, _INVOICE_FIELDS)
            ]
        return found

    async def parties_by_code(self, codes: Sequence[str]) -> dict[str, list[int]]:
        """The party IDs holding each code (a customer ID): more than one is a duplicate."""
        out: dict[str, list[int]] = {}
        wanted = sorted(set(codes))
        for start in range(0, len(wanted), _PAGE):
            rows = await self._search_all(
                "party.party", [["code", "in", wanted[start : start + _PAGE]]], ["code"]
            )
            for row in rows:
                out.setdefault(str(row["code"]), []).append(int(row["id"]))
        return out

    async def _search_all(
        self, model: str, domain: list[Any], fields: list[str]
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = await self._rpc.call(
                f"model.{model}.search_read", domain, len(rows), _PAGE, _ID_ASC, fields
            )
            rows += page
            if len(page) < _PAGE:
                return rows

    async def party_changes(self, since: datetime) -> list[tuple[str, datetime]]:
        """The codes (customer IDs) of parties written at or after ``since`` (aware),
        oldest first, with their ``write_date`` (UTC); read with an overlap."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        naive = since.astimezone(UTC).replace(tzinfo=None)  # Tryton keeps naive UTC
        rows = await self._rpc.call(
            "model.party.party.search_read",
            [["write_date", ">=", naive], ["code", "!=", None]],
            0,
            None,
            [["write_date", "ASC"], ["id", "ASC"]],
            ["code", "write_date"],
        )
        return [(str(r["code"]), _utc(r.get("write_date"))) for r in rows]

    async def sale_changes(self, since: datetime) -> list[tuple[ErpSale, datetime]]:
        """Sales written at or after ``since`` (aware), oldest first, with their
        ``write_date`` (UTC). Tryton stamps the transaction's start, so callers read
        with an overlap and de-duplicate."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        naive = since.astimezone(UTC).replace(tzinfo=None)  # Tryton keeps naive UTC
        rows = await self._rpc.call(
            "model.sale.sale.search_read",
            [["write_date", ">=", naive]],
            0,
            None,
            [["write_date", "ASC"], ["id", "ASC"]],
            [*_SALE_FIELDS, "write_date"],
        )
        return [(_sale(r), _utc(r.get("write_date"))) for r in rows]

    async def create_sale(self, order: SalesOrder, *, idempotency_key: str) -> tuple[ErpSale, bool]:
        """A draft sale for ``order`` (manual invoicing, lines by product code).

        Returns ``(sale, created)``; a repeat with the same ``order_ref`` returns
        the existing sale and ``False``. An unknown SKU raises ``MappingError``
        with ``field="lines[i].sku"`` before anything is written.
        """
        async with keyed_lock((*self._scope, "sale", order.order_ref)):
            existing = await self.find_sale(order.order_ref)
            if existing is not None:
                log.info("erp sale %s exists (key %s)", order.order_ref, idempotency_key)
                return existing, False
            lines = []
            for index, line in enumerate(order.lines):
                product_id, unit_id = await self._product(line.sku, f"lines[{index}].sku")
                values: dict[str, Any] = {
                    "type": "line",
                    "product": product_id,
                    "unit": unit_id,
                    "quantity": float(line.quantity),
                    "unit_price": line.unit_price,
                }
                if line.description:
                    values["description"] = line.description
                lines.append(values)
            currency_id = await self._currency(order.currency)
            term_id = await self._payment_term(order.payment_terms)
            party_id = order.customer.erp_party_id or await self.ensure_party(order.customer)
            address_id = await self._address(party_id)
            values = {
                "party": party_id,
                "invoice_address": address_id,
                "shipment_address": address_id,
                "company": self._rpc.context.get("company"),
                "currency": currency_id,
                "payment_term": term_id,
                "reference": order.order_ref,
                # Billing owns invoicing; the ERP records the order and the credit check.
                "invoice_method": "manual",
                # The credit limit is checked only for sales shipped on order.
                "shipment_method": "order",
                "lines": [["create", lines]],
            }
            if order.close_date is not None:
                values["sale_date"] = order.close_date
            (sale_id,) = await self._rpc.call("model.sale.sale.create", [values])
            winner = await self._settle_race("model.sale.sale", order.order_ref, int(sale_id))
            sale = await self._read_sale(winner)
            log.info(
                "erp sale %s for %s (key %s, created %s)",
                sale.id,
                order.order_ref,
                idempotency_key,
                winner == sale_id,
            )
            return sale, winner == sale_id

    async def confirm_sale(self, sale_id: int, *, override_credit: bool = False) -> ErpSale:
        """Quote then confirm; a sale already confirmed is returned as it is.

        Over the party's credit limit raises ``CreditHold`` (a ``ConflictError``)
        and the sale stays a quotation: the override is a human decision. With
        ``override_credit`` (an approved override) the ERP's own warning is
        acknowledged for this one sale, as a credit-limit user would in Tryton's
        client: a ``res.user.warning`` for the warning's key, which Tryton consumes
        on the confirm. The party's limit is left as it is.
        """
        sale = await self._read_sale(sale_id)
        async with keyed_lock((*self._scope, "sale", sale.reference)):
            sale = await self._read_sale(sale_id)
            if sale.is_confirmed:
                return sale
            if sale.state == "cancelled":
                raise ConflictError(f"sale {sale_id} is cancelled in the ERP", system=SYSTEM)
            if sale.state == "draft":
                await self._rpc.call("model.sale.sale.quote", [sale_id], transition=True)
            try:
                try:
                    await self._rpc.call("model.sale.sale.confirm", [sale_id], transition=True)
                except CreditHold as exc:
                    if not (override_credit and exc.warning_key):
                        raise
                    await self._rpc.call(
                        "model.res.user.warning.create",
                        [{"user": self._rpc.user_id, "name": exc.warning_key, "always": False}],
                    )
                    await self._rpc.call("model.sale.sale.confirm", [sale_id], transition=True)
            except CreditHold as exc:
                exposure, limit = await self.credit_position(sale.party_id)
                raise CreditHold(
                    f"sale {sale_id} ({sale.reference}) is on credit hold: {exc.message}",
                    warning_key=exc.warning_key,
                    party_id=sale.party_id,
                    exposure=exposure,
                    limit=limit,
                    amount=sale.total,
                ) from exc
            return await self._read_sale(sale_id)

    # -- invoices --------------------------------------------------------------------------

    async def find_invoice(self, reference: str) -> ErpInvoice | None:
        """The oldest customer invoice with this reference, if any."""
        found = await self._rpc.call(
            "model.account.invoice.search_read",
            [["reference", "=", reference], ["type", "=", "out"]],
            0,
            1,
            _ID_ASC,
            _INVOICE_FIELDS,
        )
        return _invoice(found[0]) if found else None

    async def post_invoice(
        self, invoice: Invoice, *, party_id: int, description: str, idempotency_key: str
    ) -> tuple[ErpInvoice, bool]:
        """A posted customer invoice for ``invoice.amount_due``; ``(invoice, created)``.

        Idempotent by reference (= ``invoice.invoice_id``): an existing draft is
        posted, a posted one returned, and ``created`` is False for both.
        """
        if invoice.amount_due < 0:
            raise ValidationError(
                f"invoice {invoice.invoice_id} has a negative amount due; use a credit note",
                field="amount_due",
                system=SYSTEM,
            )
        async with keyed_lock((*self._scope, "invoice", invoice.invoice_id)):
            existing = await self.find_invoice(invoice.invoice_id)
            created = existing is None
            if existing is not None:
                invoice_id = existing.id
                log.info("erp invoice %s exists (key %s)", invoice.invoice_id, idempotency_key)
            else:
                invoice_id = await self._create_invoice(invoice, party_id, description)
                winner = await self._settle_race(
                    "model.account.invoice", invoice.invoice_id, invoice_id
                )
                created = winner == invoice_id
                invoice_id = winner
            current = await self._read_invoice(invoice_id)
            if current.state in ("draft", "validated"):
                try:
                    await self._rpc.call(
                        "model.account.invoice.post", [invoice_id], transition=True
                    )
                except ConflictError:
                    # Posted meanwhile (an earlier attempt whose answer was lost still
                    # committing, or a clerk): Tryton refuses to post it again, and a
                    # posted or paid invoice is what this step wants.
                    current = await self._read_invoice(invoice_id)
                    if current.state not in ("posted", "paid"):
                        raise
                current = await self._read_invoice(invoice_id)
            elif current.state not in ("posted", "paid"):
                raise ConflictError(
                    f"invoice {invoice.invoice_id} is {current.state} in the ERP", system=SYSTEM
                )
            log.info(
                "erp invoice %s posted for %s (key %s, created %s)",
                current.id,
                invoice.invoice_id,
                idempotency_key,
                created,
            )
            return current, created

    async def _create_invoice(self, invoice: Invoice, party_id: int, description: str) -> int:
        values = {
            "type": "out",
            "party": party_id,
            "invoice_address": await self._address(party_id),
            "company": self._rpc.context.get("company"),
            "currency": await self._currency(invoice.currency),
            "account": await self._account("receivable"),
            "journal": await self._journal("revenue"),
            "payment_term": await self._payment_term("NET30"),
            "reference": invoice.invoice_id,
            "description": description,
            "lines": [
                [
                    "create",
                    [
                        {
                            "type": "line",
                            "account": await self._account("revenue"),
                            "quantity": 1.0,
                            "unit_price": invoice.amount_due,
                            "description": description,
                        }
                    ],
                ]
            ],
        }
        (invoice_id,) = await self._rpc.call("model.account.invoice.create", [values])
        return int(invoice_id)

    # -- helpers ---------------------------------------------------------------------------

    async def _settle_race(self, model: str, reference: str, own_id: int) -> int:
        """The oldest record with ``reference``; ours is deleted if another came first.

        Guards the search-then-create race between processes, which our
        in-process lock cannot see.
        """
        domain: list[list[Any]] = [["reference", "=", reference]]
        if model == "model.account.invoice":
            domain.append(["type", "=", "out"])
        ids = await self._rpc.call(f"{model}.search", domain, 0, None, _ID_ASC)
        oldest = int(ids[0]) if ids else own_id
        if oldest != own_id:
            log.warning("erp %s %s created twice; dropping %s", model, reference, own_id)
            await self._rpc.call(f"{model}.delete", [own_id])
        return oldest

    async def _read_sale(self, sale_id: int) -> ErpSale:
        rows = await self._rpc.call("model.sale.sale.read", [sale_id], _SALE_FIELDS)
        if not rows:
            raise ValidationError(f"no sale {sale_id} in the ERP", system=SYSTEM)
        return _sale(rows[0])

    async def _read_invoice(self, invoice_id: int) -> ErpInvoice:
        rows = await self._rpc.call("model.account.invoice.read", [invoice_id], _INVOICE_FIELDS)
        if not rows:
            raise ValidationError(f"no invoice {invoice_id} in the ERP", system=SYSTEM)
        return _invoice(rows[0])

    async def _product(self, sku: str, field: str) -> tuple[int, int]:
        key = ("product", sku)
        if key not in self._ids:
            found = await self._rpc.call(
                "model.product.product.search_read",
                [["code", "=", sku], ["salable", "=", True]],
                0,
                1,
                None,
                ["default_uom"],
            )
            if not found:
                raise MappingError(
                    f"SKU {sku!r} has no salable product in the ERP", field=field, system=SYSTEM
                )
            self._ids[key] = int(found[0]["id"])
            self._ids[("uom", sku)] = int(found[0]["default_uom"])
        return self._ids[key], self._ids[("uom", sku)]

    async def _lookup(self, kind: str, model: str, domain: list[Any], field: str) -> int:
        key = (kind, repr(domain))
        if key not in self._ids:
            ids = await self._rpc.call(f"model.{model}.search", domain, 0, 1, _ID_ASC)
            if not ids:
                raise MappingError(f"no {kind} {domain!r} in the ERP", field=field, system=SYSTEM)
            self._ids[key] = int(ids[0])
        return self._ids[key]

    async def _currency(self, code: str) -> int:
        return await self._lookup(
            "currency", "currency.currency", [["code", "=", code.upper()]], "currency"
        )

    async def _payment_term(self, name: str) -> int:
        return await self._lookup(
            "payment term", "account.invoice.payment_term", [["name", "=", name]], "payment_terms"
        )

    async def _account(self, kind: str) -> int:
        company = self._rpc.context.get("company")
        domain = [[f"type.{kind}", "=", True], ["closed", "!=", True], ["company", "=", company]]
        return await self._lookup(f"{kind} account", "account.account", domain, "account")

    async def _journal(self, kind: str) -> int:
        return await self._lookup("journal", "account.journal", [["type", "=", kind]], "journal")

    async def _address(self, party_id: int) -> int:
        rows = await self._rpc.call("model.party.party.read", [party_id], ["addresses"])
        if not rows:
            raise ValidationError(f"no party {party_id} in the ERP", system=SYSTEM)
        if not rows[0]["addresses"]:
            raise ValidationError(f"party {party_id} has no address in the ERP", system=SYSTEM)
        return int(rows[0]["addresses"][0])


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if value is None:
        return Decimal(0)
    raise RemoteError(f"expected a Decimal from Tryton, got {type(value).__name__}", system=SYSTEM)


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise RemoteError(f"expected a datetime from Tryton, got {value!r}", system=SYSTEM)
    return value.replace(tzinfo=UTC)


def _sale(row: dict[str, Any]) -> ErpSale:
    currency = row.get("currency.") or {}
    return ErpSale(
        id=int(row["id"]),
        number=row.get("number"),
        reference=str(row.get("reference") or ""),
        state=str(row["state"]),
        total=_decimal(row.get("total_amount")),
        currency=str(currency.get("code", "")),
        party_id=int(row["party"]),
        invoice_method=str(row["invoice_method"]),
    )


def _invoice(row: dict[str, Any]) -> ErpInvoice:
    return ErpInvoice(
        id=int(row["id"]),
        number=row.get("number"),
        reference=str(row.get("reference") or ""),
        state=str(row["state"]),
        total=_decimal(row.get("total_amount")),
    )
