"""A Zendesk Support stand-in: organizations, tickets and the incremental export.

Basic auth with an API token, Zendesk's error shapes (``RecordInvalid``,
``RecordNotFound``, 429 with ``Retry-After``), offset and cursor pagination,
``Idempotency-Key`` on ticket creation, and fault injection under ``/_sandbox/``.
"""

from ._app import Account, create_app
from ._launcher import ZendeskSandbox
from ._store import Store

__all__ = ["Account", "Store", "ZendeskSandbox", "create_app"]
