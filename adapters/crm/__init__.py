"""The CRM adapter (Salesforce): opportunity changes and won deals as canonical orders,
writes back (sObject update, Task create), its OAuth 2.0 JWT bearer session, and the
poller that reads its change feed."""

from ._auth import JwtBearer, JwtBearerAuth, SessionRejected, StaticToken, TokenRequestRefused
from ._poller import CrmPoller
from ._salesforce import (
    ORDER_STATUSES,
    OpportunityChange,
    SalesforceAdapter,
    SalesforceValidationError,
    TaskRef,
    WonDeal,
)

__all__ = [
    "ORDER_STATUSES",
    "CrmPoller",
    "JwtBearer",
    "JwtBearerAuth",
    "OpportunityChange",
    "SalesforceAdapter",
    "SalesforceValidationError",
    "SessionRejected",
    "StaticToken",
    "TaskRef",
    "TokenRequestRefused",
    "WonDeal",
]
