"""A Salesforce stand-in: the REST API subset Interlock uses, served over TLS.

Accounts, products, opportunities and their line items in memory; SOQL with
paging; OAuth tokens; ``Sforce-Limit-Info``; errors as Salesforce shapes them;
fault injection under ``/_sandbox/``.
"""

from ._app import API_LIMIT, Credentials, create_app
from ._errors import SalesforceError
from ._launcher import SalesforceSandbox
from ._soql import SoqlError, parse
from ._store import Store

__all__ = [
    "API_LIMIT",
    "Credentials",
    "SalesforceError",
    "SalesforceSandbox",
    "SoqlError",
    "Store",
    "create_app",
    "parse",
]
