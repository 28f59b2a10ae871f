"""The CRM adapter (Salesforce): opportunity changes and won deals as canonical orders,
and the poller that reads its change feed."""

from ._poller import CrmPoller
from ._salesforce import OpportunityChange, SalesforceAdapter, WonDeal

__all__ = ["CrmPoller", "OpportunityChange", "SalesforceAdapter", "WonDeal"]
