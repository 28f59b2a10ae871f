"""Tryton's side of a statement file, over the ERP adapter's JSON-RPC.

The file goes through Tryton's own import wizard (``account.statement.import``):
``mt940`` from ``account_statement_mt940``, ``camt_053_001`` from
``account_statement_sepa``. The wizard creates the statement and one *origin* per
bank line in one transaction. Then each origin gets its statement line: to the
invoice it pays (``related_to``, the invoice's receivable account and party), or
to the suspense account when no invoice claims it. Validating the statement
creates the move and reconciles it with the invoice, posting it books the move:
the invoice is ``paid``. A failure before validation cancels and deletes the draft,
so a file is in Tryton whole or not at all; once validated, a statement is only
ever finished (posted), never cancelled.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters.erp import TrytonRpc
from tracing import InterlockError, MappingError

__all__ = ["TRYTON_FORMATS", "ErpInvoiceRef", "Origin", "StatementLedger"]

log = logging.getLogger("interlock.adapters.statements")

#: Our format name -> the import wizard's ``file_format``.
TRYTON_FORMATS = {"mt940": "mt940", "camt.053": "camt_053_001"}
_WIZARD = "wizard.account.statement.import"


@dataclass(frozen=True, slots=True)
class Origin:
    """A bank line as Tryton imported it."""

    id: int
    statement: int
    date: Any
    amount: Decimal
    text: str


@dataclass(frozen=True, slots=True)
class ErpInvoiceRef:
    """A customer invoice a bank line may pay."""

    id: int
    number: str | None
    reference: str
    state: str
    amount_to_pay: Decimal
    currency: str
    party: int
    account: int


class StatementLedger:
    """Imports, reconciles and (on failure) removes Tryton statements."""

    def __init__(self, rpc: TrytonRpc, *, suspense_account: str) -> None:
        self._rpc = rpc
        self._suspense_code = suspense_account
        self._suspense: int | None = None

    async def import_file(self, data: bytes, fmt: str, file_name: str) -> list[int]:
        """Run Tryton's import wizard on ``data``; the IDs of the statements it made."""
        (session, _, _) = await self._rpc.call(f"{_WIZARD}.create")
        try:
            start = {
                "company": self._rpc.context.get("company"),
                "file_": data,
                "file_name": file_name,
                "file_format": TRYTON_FORMATS[fmt],
            }
            answer = await self._rpc.call(
                f"{_WIZARD}.execute", session, {"start": start}, "import_"
            )
        finally:
            await self._rpc.call(f"{_WIZARD}.delete", session)
        ids: list[int] = []
        for action in answer.get("actions", []):
            if len(action) == 2 and isinstance(action[1], dict):
                ids.extend(int(i) for i in action[1].get("res_id", []))
        return ids

    async def earlier_attempts(self, checksum: str, *, recent: int = 20) -> list[tuple[int, str]]:
        """``(statement, state)`` of the recent statements Tryton imported from a file with
        this sha256: what an import cut off before it was recorded left behind (a timeout
        after the ERP had done the work)."""
        ids = await self._rpc.call(
            "model.account.statement.search",
            [],
            0,
            recent,
            [["id", "DESC"]],
        )
        if not ids:
            return []
        rows = await self._rpc.call("model.account.statement.read", ids, ["state", "origin_file"])
        return [
            (int(r["id"]), str(r["state"]))
            for r in rows
            if isinstance(r.get("origin_file"), bytes)
            and hashlib.sha256(r["origin_file"]).hexdigest() == checksum
        ]

    async def origins(self, statement_ids: Sequence[int]) -> list[Origin]:
        """The statements' origins in file order (Tryton creates them in order)."""
        rows = await self._rpc.call(
            "model.account.statement.origin.search_read",
            [["statement", "in", list(statement_ids)]],
            0,
            None,
            [["statement", "ASC"], ["id", "ASC"]],
            ["statement", "date", "amount", "description", "information"],
        )
        out = []
        for row in rows:
            info = row.get("information") or {}
            parts = [row.get("description") or "", *(str(v) for v in info.values())]
            out.append(
                Origin(
                    id=int(row["id"]),
                    statement=int(row["statement"]),
                    date=row["date"],
                    amount=row["amount"],
                    text=" ".join(p for p in parts if p),
                )
            )
        return out

    async def invoices_named(self, tokens: Iterable[str]) -> list[ErpInvoiceRef]:
        """Posted or paid customer invoices whose number or reference is a token."""
        words = sorted(set(tokens))
        if not words:
            return []
        rows = await self._rpc.call(
            "model.account.invoice.search_read",
            [
                ["type", "=", "out"],
                ["state", "in", ["posted", "paid"]],
                ["OR", ["reference", "in", words], ["number", "in", words]],
            ],
            0,
            20,
            [["id", "ASC"]],
            list(_INVOICE_FIELDS),
        )
        return [_invoice_ref(r) for r in rows]

    async def invoices_by_id(self, invoice_ids: Iterable[int]) -> dict[int, ErpInvoiceRef]:
        """The customer invoices with these IDs, by ID."""
        ids = sorted(set(invoice_ids))
        if not ids:
            return {}
        rows = await self._rpc.call("model.account.invoice.read", ids, list(_INVOICE_FIELDS))
        return {int(r["id"]): _invoice_ref(r) for r in rows}

    async def booked_invoices(self, statement_ids: Sequence[int]) -> dict[int, int]:
        """Origin ID -> the invoice its statement line pays, for the statements' lines
        booked to an invoice (a line booked to the suspense account is not in it)."""
        rows = await self._rpc.call(
            "model.account.statement.line.search_read",
            [["statement", "in", list(statement_ids)]],
            0,
            None,
            [["id", "ASC"]],
            ["origin", "related_to"],
        )
        booked: dict[int, int] = {}
        for row in rows:
            model, _, rid = str(row.get("related_to") or "").partition(",")
            if row.get("origin") is not None and model == "account.invoice" and rid.isdigit():
                booked[int(row["origin"])] = int(rid)
        return booked

    async def suspense(self) -> int:
        """The suspense account that holds money no invoice claims."""
        if self._suspense is None:
            ids = await self._rpc.call(
                "model.account.account.search",
                [["code", "=", self._suspense_code], ["closed", "!=", True]],
                0,
                1,
                None,
            )
            if not ids:
                raise MappingError(
                    f"no suspense account {self._suspense_code!r} in the ERP",
                    field="statements.suspense_account",
                    system="erp",
                )
            self._suspense = int(ids[0])
        return self._suspense

    async def book(self, lines: Sequence[dict[str, Any]], statement_ids: Sequence[int]) -> None:
        """Create the statement lines, validate and post the statements."""
        await self._rpc.call("model.account.statement.line.create", list(lines))
        ids = list(statement_ids)
        await self._rpc.call("model.account.statement.validate_statement", ids, transition=True)
        await self._rpc.call("model.account.statement.post", ids, transition=True)

    async def invoice_states(self, invoice_ids: Sequence[int]) -> dict[int, str]:
        if not invoice_ids:
            return {}
        rows = await self._rpc.call("model.account.invoice.read", list(invoice_ids), ["state"])
        return {int(r["id"]): str(r["state"]) for r in rows}

    async def finish(self, statement_ids: Sequence[int]) -> None:
        """Post the statements an import cut off after validation left validated.

        Validating already reconciled their lines with the invoices (they are paid):
        the import is finished, never undone."""
        rows = await self._rpc.call("model.account.statement.read", list(statement_ids), ["state"])
        validated = [int(r["id"]) for r in rows if r["state"] == "validated"]
        if validated:
            await self._rpc.call("model.account.statement.post", validated, transition=True)

    async def discard(self, statement_ids: Sequence[int]) -> list[int]:
        """Remove the draft statements a failed import left behind (cancel, then
        delete); the IDs of those it keeps.

        A validated or posted statement is kept: validating reconciled its lines with
        their invoices, and cancelling it would leave them paid by nothing Tryton
        shows, so that the next import of the file finds every line "already paid".
        The next attempt finishes it instead (``finish``)."""
        ids = list(statement_ids)
        if not ids:
            return []
        kept = ids
        try:
            rows = await self._rpc.call("model.account.statement.read", ids, ["state"])
            states = {int(r["id"]): str(r["state"]) for r in rows}
            kept = [i for i, state in states.items() if state in _FINISHED]
            drafts = [i for i, state in states.items() if state == "draft"]
            if drafts:
                await self._rpc.call("model.account.statement.cancel", drafts, transition=True)
            gone = [i for i in states if i not in kept]
            if gone:
                await self._rpc.call("model.account.statement.delete", gone)
        except InterlockError as exc:
            # The import's own error is what the caller reports; this one is logged.
            log.error("could not remove statements %s after a failed import: %s", ids, exc)
        return kept


#: The states of a statement whose lines Tryton has reconciled with their invoices.
_FINISHED = ("validated", "posted")
_INVOICE_FIELDS = (
    "number",
    "reference",
    "state",
    "amount_to_pay",
    "currency.code",
    "party",
    "account",
)


def _invoice_ref(r: dict[str, Any]) -> ErpInvoiceRef:
    return ErpInvoiceRef(
        id=int(r["id"]),
        number=r.get("number"),
        reference=str(r.get("reference") or ""),
        state=str(r["state"]),
        amount_to_pay=r["amount_to_pay"],
        currency=str((r.get("currency.") or {}).get("code", "")),
        party=int(r["party"]),
        account=int(r["account"]),
    )
