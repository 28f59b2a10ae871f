"""The support desk adapter (Zendesk): organizations, entitlements, onboarding tickets,
and the poll of its ticket changes."""

from ._tickets import TicketFeed, TicketPoller
from ._zendesk import ZendeskAdapter

__all__ = ["TicketFeed", "TicketPoller", "ZendeskAdapter"]
