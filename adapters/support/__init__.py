"""The support desk adapter (Zendesk): organizations, entitlements, onboarding tickets."""

from ._zendesk import ZendeskAdapter

__all__ = ["ZendeskAdapter"]
