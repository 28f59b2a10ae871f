"""The ServiceNow support desk adapter: CSM accounts, cases, work notes, priority."""

from ._client import ServiceNowAdapter

__all__ = ["ServiceNowAdapter"]
