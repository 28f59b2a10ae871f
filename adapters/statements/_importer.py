"""One statement file in, one batch out.

read the file, sha256 ──▶ imported before? ──yes──▶ "duplicate" (done/)
          │ no
parse strictly (MT940 or camt.053) ──malformed──▶ "rejected" (rejected/, reason)
          │
Tryton's import wizard ──refused (unknown account…)──▶ "rejected"
          │
match each line to an invoice by its remittance information
          │
statement lines (invoice or suspense), validate, post ──fails──▶ drafts removed,
          │                                                   "rejected" (or left in
          │                                                   the inbox if retriable)
          │   (a statement Tryton validated is never removed: the next attempt
          │    finds it by the file's sha256, posts it and records it, "imported")
events: the batch, then one per line under its invoice's correlation ID
(a line no single open invoice claims is a dead letter) ──▶ "imported" (done/)
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from collector import Bus
from tracing import (
    ErrorInfo,
    Event,
    IntegrationError,
    InterlockError,
    Reason,
    Status,
    current_trace_context,
    new_event_id,
    start_step_span,
)

from . import _camt053, _mt940
from ._ledger import ErpInvoiceRef, Origin, StatementLedger
from ._models import BankLine, Batch, LineOutcome, MalformedStatement, Outcome, ParsedStatement
from ._store import BatchStore

__all__ = ["SOURCE", "STEP", "Importer", "parse_file"]

log = logging.getLogger("interlock.adapters.statements")

#: The system bank files come from, as envelopes and the explorer name it.
SOURCE = "bank"
#: The step of a bank line's reconciliation; of a file's import.
STEP = "erp.statement.reconcile"
FILE_STEP = "erp.statement.import"
_PARSERS: tuple[tuple[Callable[[bytes], bool], Callable[[bytes], ParsedStatement]], ...] = (
    (_mt940.looks_like, _mt940.parse),
    (_camt053.looks_like, _camt053.parse),
)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-/.]*[A-Za-z0-9]|[A-Za-z0-9]")


def parse_file(data: bytes) -> ParsedStatement:
    """The statement in ``data`` by its content (MT940 or camt.053)."""
    if not data.strip():
        raise MalformedStatement("the file is empty")
    for looks_like, parse in _PARSERS:
        if looks_like(data):
            return parse(data)
    raise MalformedStatement("neither MT940 nor camt.053: the format is unknown")


@dataclass(frozen=True, slots=True)
class _Match:
    line: BankLine
    origin: Origin
    outcome: LineOutcome
    invoice: ErpInvoiceRef | None
    reason: str | None


class Importer:
    """Imports files into Tryton and records their batches and line events."""

    def __init__(self, ledger: StatementLedger, store: BatchStore, bus: Bus) -> None:
        self._ledger = ledger
        self._store = store
        self._bus = bus

    async def import_path(self, path: Path, *, done: Path, rejected: Path) -> Batch:
        """Import one file and move it to ``done`` or ``rejected``.

        A retriable ERP failure (the ERP is down) leaves the file where it is and
        re-raises, so the next scan tries again.
        """
        data = await asyncio.to_thread(path.read_bytes)
        batch = await self.import_bytes(data, path.name)
        folder = rejected if batch.outcome is Outcome.REJECTED else done
        await asyncio.to_thread(_move, path, folder / f"{batch.batch_id}-{path.name}")
        return batch

    async def import_bytes(self, data: bytes, file_name: str) -> Batch:
        checksum = hashlib.sha256(data).hexdigest()
        batch = Batch(
            batch_id=f"stb_{new_event_id()}",
            file_name=file_name,
            checksum=checksum,
            format=None,
            outcome=Outcome.IMPORTED,
            received_at=datetime.datetime.now(datetime.UTC),
        )
        prior = await self._store.imported_with(checksum)
        if prior is not None:
            batch.outcome, batch.duplicate_of = Outcome.DUPLICATE, prior
            batch.reason = f"the same file (sha256 {checksum[:12]}…) was imported as {prior}"
            await self._store.save(batch)
            log.info("statement %s is a duplicate of %s", file_name, prior)
            return batch
        try:
            parsed = parse_file(data)
        except MalformedStatement as exc:
            return await self._reject(batch, exc.message)
        batch.format, batch.line_count = parsed.format, len(parsed.lines)
        batch.currency = parsed.currency
        batch.amount = sum((line.amount for line in parsed.lines), Decimal(0))
        earlier = await self._ledger.earlier_attempts(checksum)
        finished = [sid for sid, state in earlier if state in ("validated", "posted")]
        if finished:
            return await self._resume(batch, parsed, finished)
        # Drafts of an attempt cut off before validation go first: the file is imported whole.
        await self._ledger.discard([sid for sid, _ in earlier])
        try:
            statement_ids = await self._ledger.import_file(data, parsed.format, file_name)
        except IntegrationError as exc:
            if exc.retriable:
                raise
            return await self._reject(batch, f"the ERP refused the file: {exc.message}")
        except InterlockError as exc:
            return await self._reject(batch, f"the ERP refused the file: {exc.message}")
        batch.erp_statements = statement_ids
        try:
            matches = await self._reconcile(parsed, statement_ids)
        except MalformedStatement as exc:
            await self._ledger.discard(statement_ids)
            return await self._reject(batch, exc.message)
        except InterlockError as exc:
            kept = await self._ledger.discard(statement_ids)
            if exc.retriable:
                raise  # a validated statement left behind is finished by the next attempt
            reason = f"the ERP refused the statement: {exc.message}"
            return await self._reject(batch, _with_kept(reason, kept), kept=kept)
        return await self._record(batch, parsed, matches)

    async def _resume(self, batch: Batch, parsed: ParsedStatement, finished: list[int]) -> Batch:
        """Finish an import cut off after Tryton validated the file's statement (a
        timeout, a crash before the batch was recorded): post what is only validated,
        read back which invoice each line paid, and record the batch and its line
        events as the cut-off attempt would have. Nothing is imported again."""
        log.info("statement %s: finishing the cut-off import %s", batch.file_name, finished)
        batch.erp_statements = finished
        try:
            await self._ledger.finish(finished)
            matches = await self._rematch(parsed, finished)
        except MalformedStatement as exc:
            return await self._reject(batch, _with_kept(exc.message, finished), kept=finished)
        except InterlockError as exc:
            if exc.retriable:
                raise
            reason = f"the ERP refused to finish statement {finished}: {exc.message}"
            return await self._reject(batch, _with_kept(reason, finished), kept=finished)
        batch.reason = (
            f"finished the import of Tryton statement {finished}, cut off after Tryton "
            "had validated it"
        )
        return await self._record(batch, parsed, matches)

    async def _record(self, batch: Batch, parsed: ParsedStatement, matches: list[_Match]) -> Batch:
        await self._store.save(batch)  # imported: a crash from here on is no re-import
        await self._emit(batch, parsed, matches)
        await self._store.save(batch)
        log.info(
            "statement %s imported as %s: %d lines, %d reconciled, %d dead letters",
            batch.file_name,
            batch.batch_id,
            batch.line_count,
            batch.reconciled,
            batch.dead_lettered,
        )
        return batch

    async def _reject(self, batch: Batch, reason: str, *, kept: list[int] | None = None) -> Batch:
        batch.outcome, batch.reason = Outcome.REJECTED, reason
        batch.erp_statements = list(kept or [])
        await self._store.save(batch)
        log.warning("statement %s rejected: %s", batch.file_name, reason)
        return batch

    async def _reconcile(self, parsed: ParsedStatement, statement_ids: list[int]) -> list[_Match]:
        origins = await self._origins(parsed, statement_ids)
        claimed: set[int] = set()
        matches: list[_Match] = []
        for line, origin in zip(parsed.lines, origins, strict=True):
            match = await self._match(line, origin, parsed.currency, claimed)
            if match.invoice is not None and match.outcome is LineOutcome.RECONCILED:
                claimed.add(match.invoice.id)
            matches.append(match)
        suspense = await self._ledger.suspense()
        rows: list[dict[str, Any]] = []
        for m in matches:
            row: dict[str, Any] = {
                "statement": m.origin.statement,
                "origin": m.origin.id,
                "number": m.line.reference or str(m.line.number),
                "date": m.origin.date,
                "amount": m.origin.amount,
                "description": m.line.remittance[:200],
            }
            if m.outcome is LineOutcome.RECONCILED and m.invoice is not None:
                row |= {
                    "party": m.invoice.party,
                    "account": m.invoice.account,
                    "related_to": f"account.invoice,{m.invoice.id}",
                }
            else:
                row["account"] = suspense
            rows.append(row)
        await self._ledger.book(rows, statement_ids)
        return matches

    async def _origins(self, parsed: ParsedStatement, statement_ids: list[int]) -> list[Origin]:
        origins = await self._ledger.origins(statement_ids)
        if len(origins) != len(parsed.lines) or any(
            o.amount != line.amount for o, line in zip(origins, parsed.lines, strict=False)
        ):
            raise MalformedStatement(
                f"Tryton read {len(origins)} lines, the file holds {len(parsed.lines)}"
            )
        return origins

    async def _rematch(self, parsed: ParsedStatement, statement_ids: list[int]) -> list[_Match]:
        """Each line's outcome as a finished statement booked it: reconciled where its
        statement line pays an invoice; else what matching says now, with the invoices
        this statement paid counted as paid (they are)."""
        origins = await self._origins(parsed, statement_ids)
        booked = await self._ledger.booked_invoices(statement_ids)
        invoices = await self._ledger.invoices_by_id(booked.values())
        paid_here = {i for i in booked.values() if i in invoices}
        matches: list[_Match] = []
        for line, origin in zip(parsed.lines, origins, strict=True):
            invoice = invoices.get(booked.get(origin.id, -1))
            if invoice is not None:
                matches.append(_Match(line, origin, LineOutcome.RECONCILED, invoice, None))
                continue
            match = await self._match(line, origin, parsed.currency, paid_here)
            if match.outcome is LineOutcome.RECONCILED:
                # Matching would take it now, but Tryton holds the line in suspense.
                label = match.invoice.number or match.invoice.reference if match.invoice else ""
                match = _Match(
                    line,
                    origin,
                    LineOutcome.UNMATCHED,
                    match.invoice,
                    f"the line is booked to the suspense account, not to invoice {label}",
                )
            matches.append(match)
        return matches

    async def _match(
        self, line: BankLine, origin: Origin, currency: str, claimed: set[int]
    ) -> _Match:
        text = f"{line.remittance} {origin.text}"
        found = await self._ledger.invoices_named(_TOKEN.findall(text))

        def miss(outcome: LineOutcome, reason: str, invoice: ErpInvoiceRef | None = None) -> _Match:
            return _Match(line, origin, outcome, invoice, reason)

        if not found:
            return miss(
                LineOutcome.UNMATCHED,
                f"no invoice is named by the remittance information {line.remittance!r}",
            )
        if len(found) > 1:
            names = ", ".join(i.number or i.reference for i in found)
            return miss(
                LineOutcome.AMBIGUOUS,
                f"the remittance information {line.remittance!r} names {len(found)} invoices "
                f"({names})",
            )
        (invoice,) = found
        label = invoice.number or invoice.reference
        if invoice.state == "paid" or invoice.id in claimed:
            return miss(LineOutcome.UNMATCHED, f"invoice {label} is already paid", invoice)
        if invoice.currency and invoice.currency != currency:
            return miss(
                LineOutcome.AMOUNT_MISMATCH,
                f"invoice {label} is in {invoice.currency}, the line in {currency}",
                invoice,
            )
        if line.amount != invoice.amount_to_pay:
            return miss(
                LineOutcome.AMOUNT_MISMATCH,
                f"the line pays {line.amount} {currency}, invoice {label} leaves "
                f"{invoice.amount_to_pay} to pay",
                invoice,
            )
        return _Match(line, origin, LineOutcome.RECONCILED, invoice, None)

    async def _emit(self, batch: Batch, parsed: ParsedStatement, matches: list[_Match]) -> None:
        batch_cid = f"statement-{batch.batch_id}"
        with start_step_span(FILE_STEP, attributes={"interlock.batch_id": batch.batch_id}) as span:
            trace = current_trace_context(span)
            file_event = Event(
                correlation_id=batch_cid,
                trace_id=trace.trace_id,
                span_id=trace.span_id,
                trace_flags=trace.trace_flags,
                tracestate=trace.tracestate,
                idempotency_key=f"{FILE_STEP}:{batch.checksum}",
                source=SOURCE,
                target="erp",
                kind="statement.imported",
                step=FILE_STEP,
                entity_type="bank_statement",
                entity_id=batch.batch_id,
                amount=batch.amount,
                currency=parsed.currency,
                payload={
                    "file_name": batch.file_name,
                    "checksum": batch.checksum,
                    "format": parsed.format,
                    "line_count": batch.line_count,
                    "statement_id": parsed.statement_id,
                    "erp_statements": batch.erp_statements,
                },
            )
            await self._bus.publish(file_event)
        paid_ids = [m.invoice.id for m in matches if m.invoice and not m.reason]
        states = await self._ledger.invoice_states(paid_ids)
        for m in matches:
            await self._line_event(batch, parsed, m, file_event, states)

    async def _line_event(
        self,
        batch: Batch,
        parsed: ParsedStatement,
        m: _Match,
        file_event: Event,
        states: dict[int, str],
    ) -> None:
        lineage = None
        if m.invoice is not None:
            lineage = await self._store.correlation_of(m.invoice.reference)
        cid, cause, customer = lineage or (file_event.correlation_id, file_event.event_id, None)
        ok = m.outcome is LineOutcome.RECONCILED
        with start_step_span(
            STEP,
            parent_traceparent=file_event.traceparent,
            attributes={"interlock.correlation_id": cid, "interlock.batch_id": batch.batch_id},
        ) as span:
            trace = current_trace_context(span)
            payload: dict[str, Any] = {
                "batch_id": batch.batch_id,
                "line": m.line.number,
                "bank_reference": m.line.reference,
                "remittance": m.line.remittance,
                "outcome": m.outcome.value,
                "input_event": file_event.event_id,
                "input_kind": file_event.kind,
            }
            if m.invoice is not None:
                payload |= {
                    "invoice_id": m.invoice.reference,
                    "erp_invoice_id": m.invoice.id,
                    "erp_invoice_number": m.invoice.number,
                }
            if ok and m.invoice is not None:
                payload["erp_state"] = states.get(m.invoice.id, "")
            event = Event(
                correlation_id=cid,
                causation_id=cause,
                trace_id=trace.trace_id,
                span_id=trace.span_id,
                trace_flags=trace.trace_flags,
                tracestate=trace.tracestate,
                idempotency_key=f"{STEP}:{batch.checksum}:{m.line.number}",
                source=SOURCE,
                target="erp",
                kind="payment.reconciled" if ok else "payment.unmatched",
                step=STEP,
                entity_type="bank_line",
                entity_id=f"{batch.batch_id}:{m.line.number}",
                status=Status.OK if ok else Status.DEAD_LETTERED,
                amount=m.line.amount,
                currency=parsed.currency,
                customer_id=customer,
                payload=payload,
                error=None
                if ok
                else ErrorInfo(
                    reason=Reason.CONFLICT
                    if m.outcome is LineOutcome.AMBIGUOUS
                    else Reason.VALIDATION,
                    message=m.reason or m.outcome.value,
                    error_type=m.outcome.value,
                ),
            )
            await self._bus.publish(event)
        if ok:
            batch.reconciled += 1
        else:
            batch.dead_lettered += 1
        batch.lines.append(
            {
                "line": m.line.number,
                "date": m.line.date.isoformat(),
                "amount": str(m.line.amount),
                "reference": m.line.reference,
                "remittance": m.line.remittance,
                "outcome": m.outcome.value,
                "reason": m.reason,
                "invoice_id": m.invoice.reference if m.invoice else None,
                "erp_invoice_number": m.invoice.number if m.invoice else None,
                "correlation_id": cid,
                "event_id": event.event_id,
            }
        )


def _with_kept(reason: str, kept: list[int]) -> str:
    if not kept:
        return reason
    return (
        f"{reason}; Tryton holds statement {kept} validated (its invoices are paid): "
        "it needs a person in Tryton"
    )


def _move(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
