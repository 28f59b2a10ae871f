"""The ServiceNow adapter: customers as CSM accounts, won orders as cases, over the
Table API (``/api/now/table/...``).

ServiceNow takes no idempotency header, so every create is guarded by a query
first: an account is found by ``u_external_id`` (the canonical customer ID), a
case by ``correlation_id`` (the task field meant for integrations), which holds
the caller's idempotency key. A redelivered event finds what the first one made.

Errors: the Table API answers ``{"error": {"message", "detail"}, "status":
"failure"}``. 400 and a data policy's 403 (``Data Policy Exception``) are bad
input (:class:`tracing.ValidationError`, dead-lettered at once); 429 is
:class:`tracing.RateLimited` with the ``Retry-After`` seconds; 401 with an OAuth
token fetches a new token once, then is an :class:`tracing.AuthError`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tracing import AuthError, InterlockError, RemoteError, ValidationError

from .._canonical import Customer, SalesOrder, SupportCase
from .._http import HttpAdapter, raise_for_response, tls_verify, translate_transport_error

__all__ = ["CASE_TABLE", "ServiceNowAdapter"]

SYSTEM = "servicenow"
ACCOUNT_TABLE = "customer_account"
CASE_TABLE = "sn_customerservice_case"
#: Case states that are over (Closed, Cancelled); every other state is open.
_CLOSED_STATES = frozenset({"3", "7"})
#: The tag a credit hold puts in an account's open cases' ``u_tags``; the case's
#: priority before the hold rides beside it as ``credit_hold_prior_<n>``.
HOLD_TAG = "credit_hold"
_PRIOR_TAG = "credit_hold_prior_"
#: ServiceNow priorities and the canonical names the flows use.
_PRIORITY_NAMES = {"1": "urgent", "2": "high", "3": "normal", "4": "low"}
#: Case states and the canonical statuses (Zendesk's words, which SupportCase uses).
_STATE_NAMES = {
    "1": "new",
    "10": "open",
    "18": "pending",
    "6": "solved",
    "3": "closed",
    "7": "cancelled",
}
_PAGE = 100


class ServiceNowAdapter(HttpAdapter):
    """Async client of one ServiceNow instance.

    Basic auth with ``username``/``password``; with ``client_id`` and
    ``client_secret`` too, an OAuth bearer token from ``/oauth_token.do`` (the
    password grant), fetched on first use and again after a 401. A ``client``
    given by the caller is used as is and not closed by :meth:`aclose`.
    Credentials and tokens are sent, never logged or shown in ``repr``.

    Example::

        async with ServiceNowAdapter(url, username="svc", password=pw) as sn:
            account = await sn.ensure_organization(customer, idempotency_key=key)
            case = await sn.activate_entitlement(account, order, idempotency_key=key)
    """

    #: The system this adapter speaks to (collector.SystemAdapter).
    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._username, self._password = username, password
        self._oauth = (client_id, client_secret) if client_id and client_secret else None
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        super().__init__(client, timeout=timeout, verify=tls_verify(ca_file or True))

    def _repr_args(self) -> str:
        return f"base_url={self._base!r}, oauth={self._oauth is not None}"

    # -- transport ---------------------------------------------------------
    async def _fetch_token(self) -> str:
        assert self._oauth is not None
        client_id, client_secret = self._oauth
        form = {
            "grant_type": "password",
            "username": self._username,
            "password": self._password,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        try:
            response = await self._client.post(f"{self._base}/oauth_token.do", data=form)
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, system=SYSTEM) from exc
        raise_for_response(response, system=SYSTEM)
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError("the token endpoint gave no access_token", system=SYSTEM) from exc
        return str(token)

    async def _auth_header(self, *, renew: bool = False) -> dict[str, str]:
        if self._oauth is None:
            return {}
        async with self._token_lock:
            if self._token is None or renew:
                self._token = await self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        body: dict[str, Any] | None,
    ) -> httpx.Response:
        auth = None if self._oauth else httpx.BasicAuth(self._username, self._password)
        headers = {"Accept": "application/json", **await self._auth_header()}
        url = f"{self._base}/api/now/table/{path}"
        try:
            response = await self._client.request(
                method, url, params=params, json=body, headers=headers, auth=auth
            )
            if response.status_code == 401 and self._oauth is not None:
                # An expired or revoked token: one new token, one more try.
                headers.update(await self._auth_header(renew=True))
                response = await self._client.request(
                    method, url, params=params, json=body, headers=headers
                )
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, system=SYSTEM) from exc
        return response

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        response = await self._send(method, path, params=params, body=body)
        if response.status_code in (400, 403):
            error = _table_error(response)
            if response.status_code == 400 or "Data Policy Exception" in (error or ""):
                raise ValidationError(
                    f"HTTP {response.status_code} from {method} /api/now/table/{path}: {error}",
                    field=_field_of(error),
                    system=SYSTEM,
                )
        raise_for_response(response, system=SYSTEM)
        return response

    async def _result(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._call(method, path, **kw)
        try:
            return response.json()["result"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteError(f"no result in: {response.text[:200]}", system=SYSTEM) from exc

    async def _query(
        self, table: str, query: str, *, fields: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every record matching the encoded ``query``, paged by ``sysparm_offset``."""
        rows: list[dict[str, Any]] = []
        while True:
            size = min(_PAGE, limit - len(rows)) if limit is not None else _PAGE
            params = {
                "sysparm_query": query,
                "sysparm_limit": str(size),
                "sysparm_offset": str(len(rows)),
                "sysparm_exclude_reference_link": "true",
            }
            if fields:
                params["sysparm_fields"] = fields
            response = await self._call("GET", table, params=params)
            page = response.json().get("result") or []
            rows.extend(page)
            total = int(response.headers.get("X-Total-Count", len(rows)))
            if not page or len(rows) >= total or (limit is not None and len(rows) >= limit):
                return rows

    # -- public ------------------------------------------------------------
    async def health(self) -> bool:
        """Whether the instance answers an authenticated Table API call."""
        try:
            await self._call(
                "GET", ACCOUNT_TABLE, params={"sysparm_limit": "1", "sysparm_fields": "sys_id"}
            )
        except InterlockError:
            return False
        return True

    async def find_account(self, customer_id: str) -> str | None:
        """The sys_id of the account whose ``u_external_id`` is ``customer_id``."""
        found = await self._query(
            ACCOUNT_TABLE, f"u_external_id={_value(customer_id)}", fields="sys_id", limit=1
        )
        return str(found[0]["sys_id"]) if found else None

    async def ensure_organization(self, customer: Customer, *, idempotency_key: str) -> str:
        """The customer's account (``customer_account``), created if missing; its sys_id.

        Safe to repeat: the account is looked up by ``u_external_id`` before an
        insert. ``idempotency_key`` is accepted so every write takes one.
        """
        existing = await self.find_account(customer.customer_id)
        if existing is not None:
            return existing
        created = await self._result(
            "POST",
            ACCOUNT_TABLE,
            body={
                "name": customer.name,
                "u_external_id": customer.customer_id,
                "notes": "Created by Interlock",
            },
        )
        return str(created["sys_id"])

    async def tickets_by_external_id(self, prefix: str) -> dict[str, list[str]]:
        """Case sys_ids by idempotency key (the task's ``correlation_id``), for every case
        whose key starts with ``prefix``: more than one is a duplicate."""
        rows = await self._query(
            CASE_TABLE, f"correlation_idSTARTSWITH{_value(prefix)}", fields="sys_id,correlation_id"
        )
        out: dict[str, list[str]] = {}
        for row in rows:
            out.setdefault(str(row["correlation_id"]), []).append(str(row["sys_id"]))
        return out

    async def organizations_by_external_id(self) -> dict[str, list[str]]:
        """Account sys_ids by ``u_external_id`` (the Interlock customer ID)."""
        rows = await self._query(
            ACCOUNT_TABLE, "u_external_idISNOTEMPTY", fields="sys_id,u_external_id"
        )
        out: dict[str, list[str]] = {}
        for row in rows:
            out.setdefault(str(row["u_external_id"]), []).append(str(row["sys_id"]))
        return out

    async def find_case(self, idempotency_key: str) -> SupportCase | None:
        """The case created under ``idempotency_key`` (its ``correlation_id``), if any."""
        found = await self._query(CASE_TABLE, f"correlation_id={_value(idempotency_key)}", limit=1)
        return _case(found[0]) if found else None

    async def create_case(
        self,
        account_id: str,
        *,
        customer_id: str,
        short_description: str,
        description: str,
        idempotency_key: str,
        priority: int = 4,
        tags: tuple[str, ...] = ("interlock",),
    ) -> SupportCase:
        """One case for ``account_id``, at most one per ``idempotency_key``."""
        existing = await self.find_case(idempotency_key)
        if existing is not None:
            return existing
        created = await self._result(
            "POST",
            CASE_TABLE,
            body={
                "account": account_id,
                "short_description": short_description,
                "description": description,
                "priority": str(_priority(priority)),
                "correlation_id": idempotency_key,
                "u_tags": ",".join(tags),
                "contact_type": "web",
            },
        )
        return _case(created, customer_id=customer_id)

    async def activate_entitlement(
        self, organization_id: str, order: SalesOrder, *, idempotency_key: str
    ) -> SupportCase:
        """Note the order's plans on the account and open one onboarding case."""
        skus = sorted({line.sku for line in order.lines})
        await self._result(
            "PATCH",
            f"{ACCOUNT_TABLE}/{_sys_id(organization_id)}",
            body={"notes": f"Entitled: {', '.join(skus)} (order {order.order_ref}, active)"},
        )
        return await self.create_case(
            _sys_id(organization_id),
            customer_id=order.customer.customer_id,
            short_description=f"Onboarding: {order.customer.name} ({order.order_ref})",
            description=(
                f"Order {order.order_ref} is won. Entitled plans: {', '.join(skus)}. "
                "Please schedule onboarding."
            ),
            idempotency_key=idempotency_key,
            tags=("interlock", "onboarding"),
        )

    async def add_work_note(self, case_id: str, text: str) -> None:
        """Append an internal work note to the case (a ``sys_journal_field`` entry)."""
        await self._result("PATCH", f"{CASE_TABLE}/{_sys_id(case_id)}", body={"work_notes": text})

    async def set_priority(self, case_id: str, priority: int) -> SupportCase:
        """Set the case's priority (1 critical … 4 low)."""
        updated = await self._result(
            "PATCH",
            f"{CASE_TABLE}/{_sys_id(case_id)}",
            body={"priority": str(_priority(priority))},
        )
        return _case(updated)

    async def list_open_cases(self, account_id: str) -> list[SupportCase]:
        """The account's cases that are not closed or cancelled, oldest first."""
        rows = await self._query(
            CASE_TABLE, f"account={_sys_id(account_id)}^active=true^ORDERBYnumber"
        )
        return [_case(r) for r in rows if r.get("state") not in _CLOSED_STATES]

    # -- credit holds ------------------------------------------------------

    async def _tagged_open_cases(self, account_id: str) -> list[dict[str, Any]]:
        rows = await self._query(
            CASE_TABLE, f"account={_sys_id(account_id)}^active=true^ORDERBYnumber"
        )
        return [r for r in rows if r.get("state") not in _CLOSED_STATES]

    async def _account_note(self, account_id: str, line: str) -> None:
        found = await self._result("GET", f"{ACCOUNT_TABLE}/{_sys_id(account_id)}")
        notes = str(found.get("notes") or "")
        if line not in notes:  # a repeat of this step leaves one note
            await self._result(
                "PATCH",
                f"{ACCOUNT_TABLE}/{_sys_id(account_id)}",
                body={"notes": f"{notes}\n{line}".strip()},
            )

    async def hold_cases(
        self, organization_id: str, *, note: str, idempotency_key: str
    ) -> dict[str, str]:
        """Raise the account's open cases to priority 2 (high), tag them
        ``credit_hold`` (``u_tags``), add a work note, and note the account.
        Returns ``{sys_id: prior priority}``; the prior priority rides in ``u_tags``
        (``credit_hold_prior_<n>``), so a repeat skips the cases it raised."""
        priors: dict[str, str] = {}
        for row in await self._tagged_open_cases(organization_id):
            tags = [t for t in str(row.get("u_tags") or "").split(",") if t]
            marked = [t for t in tags if t.startswith(_PRIOR_TAG)]
            case_id = str(row["sys_id"])
            if HOLD_TAG in tags and marked:
                priors[case_id] = _PRIORITY_NAMES.get(marked[0][len(_PRIOR_TAG) :], "normal")
                continue
            prior = str(row.get("priority") or "4")
            priors[case_id] = _PRIORITY_NAMES.get(prior, "normal")
            raised = min(int(prior), 2) if prior.isdigit() else 2
            await self._result(
                "PATCH",
                f"{CASE_TABLE}/{case_id}",
                body={
                    "priority": str(raised),
                    "u_tags": ",".join([*tags, HOLD_TAG, _PRIOR_TAG + prior]),
                    "work_notes": note,
                },
            )
        await self._account_note(organization_id, note)
        return priors

    async def release_cases(
        self, organization_id: str, *, note: str, idempotency_key: str
    ) -> list[str]:
        """Lift the hold: each case tagged ``credit_hold`` gets its prior priority
        back, loses the tags and gets a work note; the account is noted."""
        released: list[str] = []
        for row in await self._tagged_open_cases(organization_id):
            tags = [t for t in str(row.get("u_tags") or "").split(",") if t]
            if HOLD_TAG not in tags:
                continue
            marked = [t[len(_PRIOR_TAG) :] for t in tags if t.startswith(_PRIOR_TAG)]
            prior = marked[0] if marked and marked[0].isdigit() else "4"
            await self._result(
                "PATCH",
                f"{CASE_TABLE}/{row['sys_id']}",
                body={
                    "priority": prior,
                    "u_tags": ",".join(
                        t for t in tags if t != HOLD_TAG and not t.startswith(_PRIOR_TAG)
                    ),
                    "work_notes": note,
                },
            )
            released.append(str(row["sys_id"]))
        await self._account_note(organization_id, note)
        return released


def _sys_id(value: str) -> str:
    """A sys_id for a URL path: 32 hex digits, nothing that could change the path."""
    text = str(value)
    if len(text) != 32 or not all(c in "0123456789abcdef" for c in text):
        raise ValidationError(f"not a ServiceNow sys_id: {text!r}", field="sys_id", system=SYSTEM)
    return text


def _value(value: str) -> str:
    """A value inside an encoded query: ``^`` would start a new term, so it is doubled."""
    return value.replace("^", "^^")


def _priority(value: int) -> int:
    if value not in (1, 2, 3, 4):
        raise ValidationError(
            f"a case priority is 1 to 4, not {value!r}", field="priority", system=SYSTEM
        )
    return value


def _case(row: dict[str, Any], *, customer_id: str = "") -> SupportCase:
    return SupportCase(
        case_id=str(row["sys_id"]),
        customer_id=customer_id,
        subject=str(row.get("short_description") or ""),
        status=_STATE_NAMES.get(str(row.get("state")), str(row.get("state") or "")),
        priority=_PRIORITY_NAMES.get(str(row.get("priority")), "normal"),
    )


def _table_error(response: httpx.Response) -> str | None:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    return ": ".join(str(part) for part in (error.get("message"), error.get("detail")) if part)


def _field_of(error: str | None) -> str | None:
    """The field a ``Invalid value for field`` error names, as ``label (field):``."""
    if error and "(" in error and "):" in error:
        return error.split("(", 1)[1].split(")", 1)[0] or None
    return None
