"""A ServiceNow stand-in: the Table API over TLS for a slice of CSM and ITSM tables.

``customer_account``, ``sn_customerservice_case``, ``incident`` and
``sys_journal_field`` (see ``_store``); encoded queries (``sysparm_query``),
``sysparm_limit`` / ``sysparm_offset`` paging with ``X-Total-Count`` and ``Link``,
``sysparm_fields``, ``sysparm_display_value``; Basic auth and OAuth bearer tokens
from ``/oauth_token.do``; the Table API's error body; fault injection (429 with
``Retry-After``, 503) under ``/_sandbox/``.
"""

from ._app import Credentials, create_app
from ._launcher import ServiceNowSandbox
from ._query import EncodedQuery, QueryError, parse_query
from ._store import TABLES, Store

__all__ = [
    "TABLES",
    "Credentials",
    "EncodedQuery",
    "QueryError",
    "ServiceNowSandbox",
    "Store",
    "create_app",
    "parse_query",
]
