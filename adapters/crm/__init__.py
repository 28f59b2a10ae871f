"""The CRM adapter (Salesforce): opportunity changes and won deals as canonical orders."""

from ._salesforce import OpportunityChange, SalesforceAdapter

__all__ = ["OpportunityChange", "SalesforceAdapter"]
