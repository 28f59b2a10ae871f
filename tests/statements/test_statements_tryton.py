"""Bank statement files into the real Tryton: each format reconciles its invoices,
and a duplicate, a truncated file and an unmatched line get their named outcome."""

from __future__ import annotations

import datetime
import hashlib
from decimal import Decimal

import httpx
import pytest

from adapters.statements import _camt053, _mt940
from tracing import InterlockError

from .conftest import Bank

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ACCOUNT = "NL91ABNA0417164300"
TODAY = datetime.datetime.now(datetime.UTC).date()


def _lines(*items: tuple[str, str]) -> list[tuple[Decimal, str, str]]:
    return [(Decimal(a), f"REF{n:03d}", text) for n, (a, text) in enumerate(items, 1)]


@pytest.mark.parametrize("writer", [_mt940, _camt053], ids=["mt940", "camt.053"])
async def test_a_statement_file_pays_its_invoices_in_tryton(bank: Bank, writer, name) -> None:
    first, first_cid = await bank.invoice("199.00")
    second, second_cid = await bank.invoice("49.50")
    data = writer.write(
        f"S-{writer.FORMAT}",
        ACCOUNT,
        "USD",
        TODAY,
        _lines(
            ("199.00", f"Invoice {first.reference} thank you"),
            ("49.50", f"INV {second.reference}"),
            ("75.00", "Invoice in_nobodyknowsthis"),
        ),
    )
    bank.drop(name("sta" if writer is _mt940 else "xml"), data)
    (batch,) = await bank.scan()

    assert batch.outcome == "imported", batch.reason
    assert batch.format == writer.FORMAT
    assert (batch.line_count, batch.reconciled, batch.dead_lettered) == (3, 2, 1)
    # Tryton holds the statement posted and both invoices paid.
    for invoice in (first, second):
        found = await bank.erp.find_invoice(invoice.reference)
        assert found is not None and found.state == "paid"
    (statement,) = await bank.erp.rpc.call(
        "model.account.statement.read", batch.erp_statements, ["state", "number_of_lines"]
    )
    assert statement["state"] == "posted"
    assert (bank.inbox / "done" / f"{batch.batch_id}-{batch.file_name}").exists()

    # Each line is an event under its invoice's correlation ID: the lineage runs on
    # from the invoice posting to the bank line.
    tx = await bank.transaction(first_cid, kind="payment.reconciled")
    (line,) = [e for e in tx["events"] if e["kind"] == "payment.reconciled"]
    assert line["status"] == "ok" and line["amount"] == "199.00"
    posted = next(e for e in tx["events"] if e["kind"] == "invoice.posted")
    assert line["causation_id"] == posted["event_id"]
    assert line["payload"]["erp_state"] == "paid"
    await bank.transaction(second_cid, kind="payment.reconciled")

    # The batch through the control API, with each line's fate.
    r = await bank.api.get(f"/api/v1/statements/{batch.batch_id}")
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["checksum"] == batch.checksum and len(record["checksum"]) == 64
    assert [ln["outcome"] for ln in record["lines"]] == ["reconciled", "reconciled", "unmatched"]
    assert record["lines"][0]["correlation_id"] == first_cid


async def test_an_unmatched_line_is_a_dead_letter_with_the_line_and_the_reason(
    bank: Bank, name
) -> None:
    paid, _ = await bank.invoice("10.00")
    other, _ = await bank.invoice("20.00")
    owed, owed_cid = await bank.invoice("30.00")
    data = _mt940.write(
        "S-UNMATCHED",
        ACCOUNT,
        "USD",
        TODAY,
        _lines(
            ("10.00", f"Invoice {paid.reference}"),
            ("5.00", "thanks for everything"),
            ("30.00", f"Invoices {paid.reference} {other.reference}"),
            ("12.00", f"Invoice {owed.reference}"),
        ),
    )
    bank.drop(name("sta"), data)
    (batch,) = await bank.scan()
    assert batch.outcome == "imported", batch.reason
    assert [ln["outcome"] for ln in batch.lines] == [
        "reconciled",
        "unmatched",
        "ambiguous",
        "amount_mismatch",
    ]
    # The money no invoice claims waits in the suspense account; the owed invoice is open.
    found = await bank.erp.find_invoice(owed.reference)
    assert found is not None and found.state == "posted"

    tx = await bank.transaction(f"statement-{batch.batch_id}", kind="payment.unmatched")
    dead = [e for e in tx["events"] if e["status"] == "dead_lettered"]
    assert len(dead) == 2  # the unmatched and the ambiguous line: no invoice to file under
    unmatched = next(e for e in dead if e["payload"]["line"] == 2)
    assert unmatched["payload"]["remittance"] == "thanks for everything"
    assert "no invoice is named" in unmatched["error"]["message"]
    assert unmatched["payload"]["outcome"] == "unmatched"
    assert unmatched["error"]["reason"] == "validation"
    # A line naming one invoice with the wrong amount is dead-lettered in that invoice's
    # transaction, where whoever looks at it will look.
    tx = await bank.transaction(owed_cid, kind="payment.unmatched")
    (mismatch,) = [e for e in tx["events"] if e["kind"] == "payment.unmatched"]
    assert mismatch["status"] == "dead_lettered"
    assert "leaves 30.00 to pay" in mismatch["error"]["message"]

    # Open dead letters, in the core's list, with the line's reason.
    r = await bank.api.get(
        "/api/v1/dead-letters", params={"step": "erp.statement.reconcile", "limit": 500}
    )
    assert r.status_code == 200, r.text
    letters = {d["event_id"]: d for d in r.json()["items"]}
    assert unmatched["event_id"] in letters
    assert mismatch["event_id"] in letters


async def test_a_file_dropped_twice_is_imported_once(bank: Bank, name) -> None:
    invoice, _ = await bank.invoice("99.00")
    data = _camt053.write(
        "S-TWICE", ACCOUNT, "USD", TODAY, _lines(("99.00", f"Invoice {invoice.reference}"))
    )
    bank.drop(name("xml"), data)
    (first,) = await bank.scan()
    assert first.outcome == "imported"
    statements = await bank.statement_count()

    bank.drop(name("xml"), data)
    (second,) = await bank.scan()
    assert second.outcome == "duplicate"
    assert second.duplicate_of == first.batch_id
    assert second.checksum == first.checksum
    assert await bank.statement_count() == statements
    assert (bank.inbox / "done" / f"{second.batch_id}-{second.file_name}").exists()

    r = await bank.api.get("/api/v1/statements", params={"outcome": "duplicate"})
    assert second.batch_id in {b["batch_id"] for b in r.json()["items"]}


@pytest.mark.parametrize("writer", [_mt940, _camt053], ids=["mt940", "camt.053"])
async def test_a_truncated_file_is_refused_whole(bank: Bank, writer, name) -> None:
    invoice, _ = await bank.invoice("15.00")
    data = writer.write(
        "S-CUT",
        ACCOUNT,
        "USD",
        TODAY,
        _lines(("15.00", f"Invoice {invoice.reference}"), ("1.00", "x")),
    )
    statements = await bank.statement_count()
    bank.drop(name("sta"), data[: len(data) * 2 // 3])
    (batch,) = await bank.scan()

    assert batch.outcome == "rejected"
    assert batch.reason
    assert await bank.statement_count() == statements  # nothing half imported
    found = await bank.erp.find_invoice(invoice.reference)
    assert found is not None and found.state == "posted"
    assert (bank.inbox / "rejected" / f"{batch.batch_id}-{batch.file_name}").exists()

    r = await bank.api.get(f"/api/v1/statements/{batch.batch_id}")
    assert r.json()["outcome"] == "rejected" and r.json()["reason"] == batch.reason


async def test_a_file_for_an_account_tryton_does_not_hold_is_refused(bank: Bank, name) -> None:
    statements = await bank.statement_count()
    data = _mt940.write("S-ELSE", "DE00999999999", "USD", TODAY, _lines(("5.00", "x")))
    bank.drop(name("sta"), data)
    (batch,) = await bank.scan()
    assert batch.outcome == "rejected"
    assert "ERP refused" in (batch.reason or "")
    assert await bank.statement_count() == statements


async def test_the_batches_are_role_protected(bank: Bank) -> None:
    r = await bank.api.get("/api/v1/statements", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = await bank.api.get("/api/v1/statements/stb_unknown")
    assert r.status_code == 404


async def test_the_demo_bank_pays_what_billing_collected_and_adds_lines_that_do_not_match(
    bank: Bank,
) -> None:
    from adapters.statements._demo import DemoBank

    invoice, cid = await bank.invoice("42.00")
    demo = DemoBank(bank.erp.rpc, bank.inbox, account=ACCOUNT, every_seconds=3600, seed=3)
    path = await demo.write_once()
    assert path is not None and not path.name.startswith(".")
    (batch,) = await bank.scan()
    assert batch.outcome == "imported", batch.reason
    assert batch.reconciled >= 1 and batch.dead_lettered >= 1
    found = await bank.erp.find_invoice(invoice.reference)
    assert found is not None and found.state == "paid"
    await bank.transaction(cid, kind="payment.reconciled")
    # Nothing new to pay: no file.
    assert await demo.write_once() is None


async def test_an_import_cut_off_after_tryton_did_the_work_is_not_done_twice(
    bank: Bank, name
) -> None:
    from adapters.statements import StatementLedger

    ledger = StatementLedger(bank.erp.rpc, suspense_account="1.1.9")
    invoice, _ = await bank.invoice("61.00")
    data = _mt940.write(
        "S-CUTOFF", ACCOUNT, "USD", TODAY, _lines(("61.00", f"Invoice {invoice.reference}"))
    )
    # The wizard ran, then the answer was lost (a timeout): a draft statement is left.
    statements = await bank.statement_count()
    (left,) = await ledger.import_file(data, "mt940", "cut.sta")
    bank.drop(name("sta"), data)
    (batch,) = await bank.scan()
    assert batch.outcome == "imported", batch.reason
    assert left not in batch.erp_statements
    assert await bank.statement_count() == statements + 1  # the leftover draft is gone
    found = await bank.erp.find_invoice(invoice.reference)
    assert found is not None and found.state == "paid"

    # Posted in Tryton but never recorded here: the file is a duplicate, not paid twice.
    other, _ = await bank.invoice("62.00")
    data = _camt053.write(
        "S-CUTOFF2", ACCOUNT, "USD", TODAY, _lines(("62.00", f"Invoice {other.reference}"))
    )
    (posted,) = await ledger.import_file(data, "camt.053", "cut.xml")
    (origin,) = await ledger.origins([posted])
    line = {
        "statement": posted,
        "origin": origin.id,
        "date": origin.date,
        "amount": origin.amount,
        "account": await ledger.suspense(),
    }
    await ledger.book([line], [posted])
    statements = await bank.statement_count()
    bank.drop(name("xml"), data)
    (again,) = await bank.scan()
    # Recorded as Tryton booked it (to suspense), with its line event, not imported again.
    assert again.outcome == "imported", again.reason
    assert again.erp_statements == [posted]
    assert await bank.statement_count() == statements
    assert [ln["outcome"] for ln in again.lines] == ["unmatched"]
    assert "suspense" in again.lines[0]["reason"]


class _CutAfter(httpx.AsyncBaseTransport):
    """Forwards to the real Tryton, then loses the answer to one method: the import is
    cut off after Tryton did that step (a timeout, a crash)."""

    def __init__(self, method: str) -> None:
        self._method = f'"{method}"'.encode()
        self._inner = httpx.AsyncHTTPTransport()
        self.cut = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if self._method in request.content:
            await response.aread()
            self.cut += 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_an_import_cut_off_after_tryton_validated_is_finished_not_undone(
    bank: Bank, tryton_server, name
) -> None:
    from adapters.erp import TrytonRpc
    from adapters.statements import Importer, StatementLedger
    from adapters.statements._store import BatchStore

    owed, cid = await bank.invoice("73.00")
    data = _mt940.write(
        "S-VALIDATED",
        ACCOUNT,
        "USD",
        TODAY,
        _lines(("73.00", f"Invoice {owed.reference}"), ("4.00", "no invoice here")),
    )
    cut = _CutAfter("model.account.statement.validate_statement")
    client = httpx.AsyncClient(transport=cut, timeout=30)
    rpc = TrytonRpc(
        tryton_server.url,
        tryton_server.database,
        tryton_server.user,
        tryton_server.password,
        client=client,
    )
    store = BatchStore(bank.runtime.host.lineage)
    path = bank.drop(name("sta"), data)
    statements = await bank.statement_count()
    try:
        importer = Importer(
            StatementLedger(rpc, suspense_account="1.1.9"), store, bank.runtime.host.bus
        )
        with pytest.raises(InterlockError) as raised:
            await importer.import_path(
                path, done=bank.inbox / "done", rejected=bank.inbox / "rejected"
            )
    finally:
        await client.aclose()
    assert cut.cut == 1 and raised.value.retriable
    assert path.exists()  # left in the inbox for the next scan
    # Tryton validated the statement before the answer was lost: it is kept, not
    # cancelled (which would unpick the invoice's payment behind the lineage's back).
    ledger = StatementLedger(bank.erp.rpc, suspense_account="1.1.9")
    ((validated, state),) = await ledger.earlier_attempts(hashlib.sha256(data).hexdigest())
    assert state == "validated"
    found = await bank.erp.find_invoice(owed.reference)
    assert found is not None and found.state == "paid"

    (batch,) = await bank.scan()
    assert batch.outcome == "imported", batch.reason
    assert [ln["outcome"] for ln in batch.lines] == ["reconciled", "unmatched"]
    assert (batch.reconciled, batch.dead_lettered) == (1, 1)
    assert batch.erp_statements == [validated]  # the cut-off statement, finished
    assert await bank.statement_count() == statements + 1
    (statement,) = await bank.erp.rpc.call(
        "model.account.statement.read", batch.erp_statements, ["state"]
    )
    assert statement["state"] == "posted"
    tx = await bank.transaction(cid, kind="payment.reconciled")
    (line,) = [e for e in tx["events"] if e["kind"].startswith("payment.")]
    assert line["status"] == "ok" and line["payload"]["erp_state"] == "paid"

    # A third drop of the file is the duplicate of this batch.
    bank.drop(name("sta"), data)
    (again,) = await bank.scan()
    assert again.outcome == "duplicate" and again.duplicate_of == batch.batch_id
