"""Reconciliation: what the systems hold, compared, whatever events Interlock saw.

Per period, every closed-won deal must have exactly one ERP sale of the same amount
and currency, one billing subscription and one support entitlement; every paid
billing invoice exactly one ERP invoice of the same amount; every customer one
record in each system. Each disagreement is a :class:`Discrepancy` with its class,
the value at risk, whether Interlock ever saw the transaction, and its repair.
"""

from ._compare import Seen, compare
from ._holdings import Holdings, read_holdings
from ._model import Check, Discrepancy, Kind, Period, Repair, period_for
from ._service import Reconciler

__all__ = [
    "Check",
    "Discrepancy",
    "Holdings",
    "Kind",
    "Period",
    "Reconciler",
    "Repair",
    "Seen",
    "compare",
    "period_for",
    "read_holdings",
]
