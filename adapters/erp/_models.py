"""What the ERP adapter hands back: Tryton's view of a sale and an invoice."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["CONFIRMED_SALE_STATES", "ErpInvoice", "ErpSale"]

#: Tryton moves a confirmed sale on to "processing" as soon as its post-commit
#: processing runs, and later to "done"; all three mean the ERP accepted it.
CONFIRMED_SALE_STATES = frozenset({"confirmed", "processing", "done"})


@dataclass(frozen=True)
class ErpSale:
    """A Tryton ``sale.sale``; ``state`` is Tryton's own (draft, quotation, confirmed,
    processing, done, cancelled)."""

    id: int
    number: str | None
    reference: str
    state: str
    total: Decimal
    currency: str
    party_id: int
    invoice_method: str

    @property
    def is_confirmed(self) -> bool:
        """Whether the ERP has confirmed the sale (it may already be processing)."""
        return self.state in CONFIRMED_SALE_STATES


@dataclass(frozen=True)
class ErpInvoice:
    """A Tryton customer ``account.invoice``; ``reference`` is the billing platform's ID."""

    id: int
    number: str | None
    reference: str
    state: str
    total: Decimal
