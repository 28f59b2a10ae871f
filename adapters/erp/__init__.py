"""The ERP (Tryton) adapter: canonical orders and invoices over JSON-RPC.

Idempotency is by natural key (party code, sale and invoice ``reference``),
because Tryton's JSON-RPC has no idempotency header; see ``_adapter``.
"""

from adapters.erp._adapter import TrytonAdapter
from adapters.erp._models import CONFIRMED_SALE_STATES, ErpInvoice, ErpSale
from adapters.erp._rpc import CreditHold, TrytonRpc

__all__ = [
    "CONFIRMED_SALE_STATES",
    "CreditHold",
    "ErpInvoice",
    "ErpSale",
    "TrytonAdapter",
    "TrytonRpc",
]
