"""The product catalog: the ERP's products and effective-dated prices, propagated to the
CRM (Product2, PricebookEntry) and billing (products, plans), and the order
pre-validation against the catalog version in force on an order's date."""

from ._checks import (
    DEFAULT_TAXES,
    CatalogChecks,
    IncompleteAccount,
    PriceMismatch,
    RetiredProduct,
    TaxNotConfigured,
    UnknownBillingTerms,
    UnknownProduct,
    effective_date,
)
from ._erp import TrytonCatalog
from ._flow import CHANGE_KIND, SPEC, STEPS, CatalogSync
from ._poller import CatalogPoller

__all__ = [
    "CHANGE_KIND",
    "DEFAULT_TAXES",
    "SPEC",
    "STEPS",
    "CatalogChecks",
    "CatalogPoller",
    "CatalogSync",
    "IncompleteAccount",
    "PriceMismatch",
    "RetiredProduct",
    "TaxNotConfigured",
    "TrytonCatalog",
    "UnknownBillingTerms",
    "UnknownProduct",
    "effective_date",
]
