"""Bank statements: MT940 and camt.053 files from an inbox into Tryton's statements.

Each file is a batch (ID, sha256, line count, outcome); each line is reconciled
with the invoice its remittance information names and recorded as an event under
that invoice's correlation ID, or dead-lettered with the reason. See
``docs/statements.md``.
"""

from ._importer import Importer, parse_file
from ._ledger import StatementLedger
from ._models import BankLine, Batch, LineOutcome, MalformedStatement, Outcome, ParsedStatement
from ._store import BatchStore
from ._watcher import InboxWatcher

__all__ = [
    "BankLine",
    "Batch",
    "BatchStore",
    "Importer",
    "InboxWatcher",
    "LineOutcome",
    "MalformedStatement",
    "Outcome",
    "ParsedStatement",
    "StatementLedger",
    "parse_file",
]
