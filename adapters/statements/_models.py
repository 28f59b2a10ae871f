"""What a statement file holds once parsed, and what importing it came to.

Both parsers (``_mt940``, ``_camt053``) give a :class:`ParsedStatement`; a file that
is not a whole statement raises :class:`MalformedStatement` (a ``ValidationError``)
naming what is wrong, and nothing of it is imported.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tracing import ValidationError

__all__ = [
    "BankLine",
    "Batch",
    "LineOutcome",
    "MalformedStatement",
    "Outcome",
    "ParsedStatement",
]


class MalformedStatement(ValidationError):
    """A statement file is truncated, malformed or of no known format."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, system="bank")


class Outcome(StrEnum):
    """What became of one file."""

    #: Every line is in a posted Tryton statement (matched lines reconciled).
    IMPORTED = "imported"
    #: A file with the same checksum was imported before: nothing done again.
    DUPLICATE = "duplicate"
    #: Refused whole (truncated, malformed, unknown account); moved to ``rejected/``.
    REJECTED = "rejected"


class LineOutcome(StrEnum):
    """What became of one line of an imported file."""

    RECONCILED = "reconciled"
    #: No invoice (or an already paid one) is named by the remittance information.
    UNMATCHED = "unmatched"
    #: The remittance information names more than one open invoice.
    AMBIGUOUS = "ambiguous"
    #: One invoice is named, but the amount is not what it leaves to pay.
    AMOUNT_MISMATCH = "amount_mismatch"


@dataclass(frozen=True, slots=True)
class BankLine:
    """One credit or debit on the statement, as the bank wrote it."""

    number: int
    date: datetime.date
    amount: Decimal
    reference: str
    remittance: str


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """One statement: the account, its currency, balances and lines."""

    format: str
    statement_id: str
    account: str
    currency: str
    opening: Decimal
    closing: Decimal
    lines: tuple[BankLine, ...]

    def check_balance(self) -> None:
        """Opening plus the lines must give the closing balance: a cut file does not."""
        total = sum((line.amount for line in self.lines), Decimal(0))
        if self.opening + total != self.closing:
            raise MalformedStatement(
                f"opening balance {self.opening} plus {len(self.lines)} lines ({total}) "
                f"is not the closing balance {self.closing}: lines are missing or extra",
                field="closing_balance",
            )


@dataclass(slots=True)
class Batch:
    """One file: its ID, checksum, line count and outcome, and each line's fate."""

    batch_id: str
    file_name: str
    checksum: str
    format: str | None
    outcome: Outcome
    received_at: datetime.datetime
    line_count: int = 0
    reconciled: int = 0
    dead_lettered: int = 0
    amount: Decimal | None = None
    currency: str | None = None
    reason: str | None = None
    duplicate_of: str | None = None
    erp_statements: list[int] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "file_name": self.file_name,
            "checksum": self.checksum,
            "format": self.format,
            "outcome": self.outcome.value,
            "received_at": self.received_at.isoformat(),
            "line_count": self.line_count,
            "reconciled": self.reconciled,
            "dead_lettered": self.dead_lettered,
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency,
            "reason": self.reason,
            "duplicate_of": self.duplicate_of,
            "erp_statements": list(self.erp_statements),
            "lines": list(self.lines),
        }
