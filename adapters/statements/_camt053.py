"""ISO 20022 camt.053 (bank to customer statement): a strict reader and a writer.

Tryton's ``account_statement_sepa`` module imports camt.053.001 into Tryton's
statements; this reader runs first so that a cut or malformed file is refused
whole. It checks that the document is well-formed XML of the camt.053 namespace
with exactly one ``Stmt``, its account (``Acct/Id/IBAN`` or ``Othr/Id``) and
currency, an opening (``OPBD``/``PRCD``) and closing (``CLBD``) balance, entries
that add up from one to the other, and, when the file states them, the number and
sum of entries (``TxsSummry/TtlNtries``).

A line is one ``Ntry``; its remittance information is ``RmtInf/Ustrd`` of its
transaction details (Tryton keeps it as ``camt_remittance_information``), and its
reference the ``EndToEndId``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from ._models import BankLine, MalformedStatement, ParsedStatement

__all__ = ["FORMAT", "looks_like", "parse", "write"]

FORMAT = "camt.053"
NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def looks_like(data: bytes) -> bool:
    return data.lstrip()[:1] == b"<" and b"camt.053" in data[:2000]


def _text(node: ET.Element, path: str) -> str | None:
    found = node.find(path)
    return found.text.strip() if found is not None and found.text else None


def _amount(node: ET.Element, path: str = "./{*}Amt") -> Decimal:
    text = _text(node, path)
    if text is None:
        raise MalformedStatement(f"an amount ({path}) is missing", field="Amt")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise MalformedStatement(f"amount {text!r} is no number", field="Amt") from exc
    return -value if _text(node, "./{*}CdtDbtInd") == "DBIT" else value


def parse(data: bytes) -> ParsedStatement:
    """The one statement in ``data``; :class:`MalformedStatement` if it is not whole."""
    try:
        # The standard library's expat refuses external entities and, since 2.4.1,
        # entity-expansion bombs; a bank file is no trusted input either way.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as exc:
        raise MalformedStatement(f"not well-formed XML (file cut short?): {exc}") from exc
    if not root.tag.startswith("{urn:iso:std:iso:20022:tech:xsd:camt.053."):
        raise MalformedStatement(f"root element {root.tag!r} is not a camt.053 Document")
    statements = root.findall("./{*}BkToCstmrStmt/{*}Stmt")
    if len(statements) != 1:
        raise MalformedStatement(
            f"{len(statements)} statements (Stmt) in the file; one is expected", field="Stmt"
        )
    (stmt,) = statements
    account = _text(stmt, "./{*}Acct/{*}Id/{*}IBAN") or _text(stmt, "./{*}Acct/{*}Id/{*}Othr/{*}Id")
    if not account:
        raise MalformedStatement("the statement names no account (Acct/Id)", field="Acct")
    balances: dict[str, Decimal] = {}
    currency = _text(stmt, "./{*}Acct/{*}Ccy")
    for balance in stmt.findall("./{*}Bal"):
        code = _text(balance, "./{*}Tp/{*}CdOrPrtry/{*}Cd")
        if code:
            balances[code] = _amount(balance)
            amt = balance.find("./{*}Amt")
            currency = currency or (amt.get("Ccy") if amt is not None else None)
    opening = balances.get("OPBD", balances.get("PRCD"))
    if opening is None:
        raise MalformedStatement("opening balance (OPBD or PRCD) is missing", field="Bal")
    if "CLBD" not in balances:
        raise MalformedStatement("closing balance (CLBD) is missing", field="Bal")
    if not currency:
        raise MalformedStatement("the statement names no currency", field="Ccy")
    lines: list[BankLine] = []
    for entry in stmt.findall("./{*}Ntry"):
        detail = entry.find("./{*}NtryDtls/{*}TxDtls")
        remittance = ""
        reference = _text(entry, "./{*}NtryRef") or ""
        if detail is not None:
            remittance = " ".join(
                (u.text or "").strip() for u in detail.findall("./{*}RmtInf/{*}Ustrd")
            )
            reference = _text(detail, "./{*}Refs/{*}EndToEndId") or reference
        booked = (
            _text(entry, "./{*}BookgDt/{*}Dt") or (_text(entry, "./{*}BookgDt/{*}DtTm") or "")[:10]
        )
        try:
            date = datetime.date.fromisoformat(booked)
        except ValueError as exc:
            raise MalformedStatement(
                f"entry {len(lines) + 1} has no booking date", field="BookgDt"
            ) from exc
        lines.append(
            BankLine(
                number=len(lines) + 1,
                date=date,
                amount=_amount(entry),
                reference=reference,
                remittance=" ".join(remittance.split()),
            )
        )
    stated = _text(stmt, "./{*}TxsSummry/{*}TtlNtries/{*}NbOfNtries")
    if stated is not None and stated != str(len(lines)):
        raise MalformedStatement(
            f"the summary states {stated} entries, the file holds {len(lines)}",
            field="NbOfNtries",
        )
    statement = ParsedStatement(
        format=FORMAT,
        statement_id=_text(stmt, "./{*}Id") or "",
        account=account,
        currency=currency,
        opening=opening,
        closing=balances["CLBD"],
        lines=tuple(lines),
    )
    statement.check_balance()
    return statement


def _balance(code: str, amount: Decimal, currency: str, date: datetime.date) -> str:
    mark = "DBIT" if amount < 0 else "CRDT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="{currency}">{abs(amount):.2f}</Amt><CdtDbtInd>{mark}</CdtDbtInd>'
        f"<Dt><Dt>{date.isoformat()}</Dt></Dt></Bal>"
    )


def write(
    statement_id: str,
    account: str,
    currency: str,
    date: datetime.date,
    lines: Sequence[tuple[Decimal, str, str]],
    *,
    opening: Decimal = Decimal(0),
) -> bytes:
    """A camt.053.001.02 document with ``lines`` of ``(amount, reference, remittance)``."""
    closing = opening + sum((amount for amount, _, _ in lines), Decimal(0))
    entries = []
    for amount, reference, remittance in lines:
        mark = "DBIT" if amount < 0 else "CRDT"
        entries.append(
            f"<Ntry><NtryRef>{escape(reference)}</NtryRef>"
            f'<Amt Ccy="{currency}">{abs(amount):.2f}</Amt><CdtDbtInd>{mark}</CdtDbtInd>'
            f"<Sts>BOOK</Sts><BookgDt><Dt>{date.isoformat()}</Dt></BookgDt>"
            f"<ValDt><Dt>{date.isoformat()}</Dt></ValDt>"
            "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd>"
            "</Fmly></Domn></BkTxCd>"
            f"<NtryDtls><TxDtls><Refs><EndToEndId>{escape(reference)}</EndToEndId></Refs>"
            f"<RmtInf><Ustrd>{escape(remittance[:140])}</Ustrd></RmtInf></TxDtls></NtryDtls>"
            "</Ntry>"
        )
    created = f"{date.isoformat()}T00:00:00+00:00"
    total = sum((abs(a) for a, _, _ in lines), Decimal(0))
    net = closing - opening
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{NAMESPACE}"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>{escape(statement_id)}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{escape(statement_id)}</Id><CreDtTm>{created}</CreDtTm>"
        f"<Acct><Id><IBAN>{escape(account)}</IBAN></Id><Ccy>{currency}</Ccy></Acct>"
        + _balance("OPBD", opening, currency, date)
        + _balance("CLBD", closing, currency, date)
        + f"<TxsSummry><TtlNtries><NbOfNtries>{len(lines)}</NbOfNtries>"
        f"<Sum>{total:.2f}</Sum><TtlNetNtry><Amt>{abs(net):.2f}</Amt>"
        f"<CdtDbtInd>{'DBIT' if net < 0 else 'CRDT'}</CdtDbtInd></TtlNetNtry>"
        "</TtlNtries></TxsSummry>" + "".join(entries) + "</Stmt></BkToCstmrStmt></Document>\n"
    )
    return document.encode()
