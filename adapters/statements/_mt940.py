"""SWIFT MT940 customer statements: a strict reader, and a writer for the demo.

Tryton's ``account_statement_mt940`` module (the ``mt940`` library) does the import
into Tryton's statements; this reader runs first so that a file Tryton would take
in part (a cut file parses as far as it goes) is refused whole. It checks the tags
a statement needs (``:20:`` reference, ``:25:`` account, ``:60F:``/``:60M:`` opening,
``:61:`` lines each with its ``:86:`` information, ``:62F:``/``:62M:`` closing) and
that the lines add up from the opening to the closing balance.

The remittance information of a line is its ``:86:`` text; the customer reference
is the ``:61:`` reference before ``//``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from ._models import BankLine, MalformedStatement, ParsedStatement

__all__ = ["FORMAT", "looks_like", "parse", "write"]

FORMAT = "mt940"
_TAG = re.compile(r"^:(\d{2}[A-Z]?):", re.MULTILINE)
_BALANCE = re.compile(r"^([CD])(\d{6})([A-Z]{3})(\d+,\d{0,2})$")
# :61: value date, optional entry date, C/D (RC/RD reversals), optional funds code,
# amount, transaction type (N + 3), customer reference, optional //bank reference.
_LINE = re.compile(
    r"^(\d{6})(\d{4})?(R?[CD])([A-Z])?(\d+,\d{0,2})([NSF][A-Z0-9]{3})([^/\n]{0,16})(?://(.*))?$",
    re.DOTALL,
)


def looks_like(data: bytes) -> bool:
    head = data.lstrip()[:200]
    return head.startswith((b":20:", b"{1:", b":940:")) or b"\n:20:" in head


def _date(text: str) -> datetime.date:
    return datetime.datetime.strptime(text, "%y%m%d").date()


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation as exc:
        raise MalformedStatement(f"amount {text!r} is no number", field="amount") from exc


def _balance(tag: str, text: str) -> tuple[Decimal, str]:
    match = _BALANCE.match(text.strip())
    if match is None:
        raise MalformedStatement(f":{tag}: balance {text.strip()!r} is malformed", field=tag)
    sign, _, currency, amount = match.groups()
    value = _amount(amount)
    return (-value if sign == "D" else value), currency


def parse(data: bytes) -> ParsedStatement:
    """The one statement in ``data``; :class:`MalformedStatement` if it is not whole."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedStatement(f"not UTF-8 text: {exc.reason}") from exc
    text = text.replace("\r\n", "\n").strip()
    # A SWIFT envelope ({1:...}{4: ... -}) around the text block is allowed.
    if "{4:" in text:
        if not text.rstrip("}").endswith("-"):
            raise MalformedStatement("the SWIFT block 4 is not closed with '-}': file cut short")
        text = text.split("{4:", 1)[1].rsplit("-", 1)[0].strip()
    fields: list[tuple[str, str]] = []
    marks = list(_TAG.finditer(text))
    if not marks or marks[0].start() != 0:
        raise MalformedStatement("no MT940 tags at the start of the file")
    for here, after in zip(marks, [*marks[1:], None], strict=True):
        end = after.start() if after is not None else len(text)
        fields.append((here.group(1), text[here.end() : end].strip()))
    tags = [tag for tag, _ in fields]
    for needed in ("20", "25"):
        if needed not in tags:
            raise MalformedStatement(f"tag :{needed}: is missing", field=needed)
    if tags.count("20") > 1:
        raise MalformedStatement("more than one statement (:20:) in one file", field="20")
    opening = next((v for t, v in fields if t in ("60F", "60M")), None)
    closing = next((v for t, v in fields if t in ("62F", "62M")), None)
    if opening is None:
        raise MalformedStatement("opening balance :60F: is missing", field="60F")
    if closing is None:
        raise MalformedStatement(
            "closing balance :62F: is missing: the file is cut short", field="62F"
        )
    if tags.index("62F" if "62F" in tags else "62M") < max(
        (i for i, t in enumerate(tags) if t == "61"), default=-1
    ):
        raise MalformedStatement("a :61: line follows the closing balance", field="61")
    opening_amount, currency = _balance("60F", opening)
    closing_amount, closing_currency = _balance("62F", closing)
    if closing_currency != currency:
        raise MalformedStatement(
            f"closing balance in {closing_currency}, opening in {currency}", field="62F"
        )
    lines: list[BankLine] = []
    for index, (tag, value) in enumerate(fields):
        if tag != "61":
            continue
        match = _LINE.match(value.split("\n", 1)[0])
        if match is None:
            raise MalformedStatement(f"statement line {value!r} is malformed", field="61")
        value_date, _, mark, _, amount, _, reference, _ = match.groups()
        info = fields[index + 1][1] if index + 1 < len(fields) else ""
        if index + 1 >= len(fields) or fields[index + 1][0] != "86":
            info = ""
        signed = _amount(amount)
        lines.append(
            BankLine(
                number=len(lines) + 1,
                date=_date(value_date),
                amount=-signed if mark.endswith("D") else signed,
                reference=reference.strip(),
                remittance=" ".join(info.split()),
            )
        )
    statement = ParsedStatement(
        format=FORMAT,
        statement_id=dict(fields)["20"],
        account=dict(fields)["25"],
        currency=currency,
        opening=opening_amount,
        closing=closing_amount,
        lines=tuple(lines),
    )
    statement.check_balance()
    return statement


def _money(value: Decimal) -> str:
    return f"{abs(value):.2f}".replace(".", ",")


def write(
    statement_id: str,
    account: str,
    currency: str,
    date: datetime.date,
    lines: Sequence[tuple[Decimal, str, str]],
    *,
    opening: Decimal = Decimal(0),
) -> bytes:
    """An MT940 file with ``lines`` of ``(amount, reference, remittance)``."""
    day = date.strftime("%y%m%d")
    out = [f":20:{statement_id[:16]}", f":25:{account}", ":28C:00001/001"]
    out.append(f":60F:{'D' if opening < 0 else 'C'}{day}{currency}{_money(opening)}")
    total = opening
    for amount, reference, remittance in lines:
        mark = "D" if amount < 0 else "C"
        out.append(f":61:{day}{date:%m%d}{mark}{_money(amount)}NTRF{reference[:16]}//{reference}")
        out.append(f":86:{remittance[:390]}")
        total += amount
    out.append(f":62F:{'D' if total < 0 else 'C'}{day}{currency}{_money(total)}")
    return ("\n".join(out) + "\n").encode()
