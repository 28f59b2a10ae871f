"""The Zendesk adapter: customers as organizations, won orders as entitlements.

Every write is idempotent: organizations are found by ``external_id`` (the
customer ID) before one is created, and the onboarding ticket carries the
caller's idempotency key as its ``external_id`` (and ``Idempotency-Key``
header), so a redelivered event never opens a second ticket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tracing import InterlockError, RemoteError, ValidationError

from .._canonical import Customer, SalesOrder, SupportCase
from .._http import HttpAdapter, raise_for_response, translate_transport_error

__all__ = ["ZendeskAdapter"]

SYSTEM = "support"
#: The tag a credit hold puts on an organization's open tickets; the ticket's priority
#: before the hold rides beside it as ``credit_hold_prior_<priority>``.
HOLD_TAG = "credit_hold"
_PRIOR_TAG = "credit_hold_prior_"
_DONE = frozenset({"solved", "closed"})


class ZendeskAdapter(HttpAdapter):
    """Async client of one Zendesk account, authenticated with an API token.

    A ``client`` given by the caller is used as is and not closed by
    :meth:`aclose`. The token is sent, never logged or shown in ``repr``.

    Example::

        async with ZendeskAdapter(url, email, token) as zd:
            org_id = await zd.ensure_organization(customer, idempotency_key=key)
            case = await zd.activate_entitlement(org_id, order, idempotency_key=key)
    """

    #: The system this adapter speaks to (collector.SystemAdapter).
    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: str,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api = base_url.rstrip("/") + "/api/v2"
        self._auth = httpx.BasicAuth(f"{email}/token", api_token)
        super().__init__(client, timeout=timeout)

    def _repr_args(self) -> str:
        return f"base_url={self._api[:-7]!r}"

    # -- transport ---------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            response = await self._client.request(
                method, self._api + path, params=params, json=body, headers=headers, auth=self._auth
            )
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, system=SYSTEM) from exc
        if response.status_code == 422:
            raise _record_invalid(response)
        raise_for_response(response, system=SYSTEM)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(f"non-JSON answer: {response.text[:200]}", system=SYSTEM) from exc

    # -- public ------------------------------------------------------------
    async def health(self) -> bool:
        """Whether the account answers an authenticated call (``users/me``)."""
        try:
            await self._call("GET", "/users/me.json")
        except InterlockError:
            return False
        return True

    async def _each(self, path: str, key: str) -> AsyncIterator[dict[str, Any]]:
        """Every record of a list endpoint, by cursor pagination (``page[size]``)."""
        page = await self._call("GET", path, params={"page[size]": "100"})
        while True:
            for row in page.get(key) or []:
                yield row
            following = (page.get("links") or {}).get("next")
            if not (page.get("meta") or {}).get("has_more") or not following:
                return
            after = parse_qs(urlsplit(following).query).get("page[after]", [""])[0]
            page = await self._call("GET", path, params={"page[size]": "100", "page[after]": after})

    async def ticket_changes(self, since: datetime) -> list[tuple[dict[str, Any], datetime]]:
        """Tickets changed at or after ``since`` (whole seconds), oldest change first, with
        their ``updated_at``: the incremental ticket export, followed to its end."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        page = await self._call(
            "GET",
            "/incremental/tickets/cursor.json",
            params={"start_time": str(int(since.timestamp()))},
        )
        out: list[tuple[dict[str, Any], datetime]] = []
        while True:
            for ticket in page.get("tickets") or []:
                updated = datetime.fromisoformat(str(ticket["updated_at"]).replace("Z", "+00:00"))
                out.append((ticket, updated.astimezone(UTC)))
            if page.get("end_of_stream") or not page.get("after_cursor"):
                return out
            page = await self._call(
                "GET",
                "/incremental/tickets/cursor.json",
                params={"cursor": str(page["after_cursor"])},
            )

    async def tickets_by_external_id(self, prefix: str) -> dict[str, list[str]]:
        """Ticket IDs by ``external_id``, for every ticket whose external ID starts with
        ``prefix`` (the entitlement step's key): more than one is a duplicate."""
        out: dict[str, list[str]] = {}
        async for ticket in self._each("/tickets.json", "tickets"):
            external = str(ticket.get("external_id") or "")
            if external.startswith(prefix):
                out.setdefault(external, []).append(str(ticket["id"]))
        return out

    async def organizations_by_external_id(self) -> dict[str, list[str]]:
        """Organization IDs by ``external_id`` (the Interlock customer ID)."""
        out: dict[str, list[str]] = {}
        async for org in self._each("/organizations.json", "organizations"):
            if org.get("external_id"):
                out.setdefault(str(org["external_id"]), []).append(str(org["id"]))
        return out

    async def organization_changes(self, since: datetime) -> list[str]:
        """External IDs (customer IDs) of organizations updated at or after ``since``."""
        out: list[str] = []
        async for org in self._each("/organizations.json", "organizations"):
            stamp = org.get("updated_at")
            if org.get("external_id") and stamp and _zendesk_time(str(stamp)) >= since:
                out.append(str(org["external_id"]))
        return out

    async def find_organization(self, external_id: str) -> str | None:
        """The organization whose ``external_id`` is the customer ID, if any."""
        found = await self._find_organization(external_id)
        return None if found is None else str(found)

    async def get_organization(self, organization_id: str) -> dict[str, Any]:
        """One organization as the desk holds it."""
        org = _organization_number(organization_id)
        found = await self._call("GET", f"/organizations/{org}.json")
        return dict(found["organization"])

    async def update_organization(self, organization_id: str, fields: dict[str, Any]) -> None:
        """``PUT organizations/{id}.json``: ``organization_fields`` merge key by key."""
        org = _organization_number(organization_id)
        await self._call("PUT", f"/organizations/{org}.json", body={"organization": fields})

    async def _find_organization(self, external_id: str) -> int | None:
        found = await self._call(
            "GET", "/organizations/search.json", params={"external_id": external_id}
        )
        orgs = found.get("organizations") or []
        return int(orgs[0]["id"]) if orgs else None

    async def ensure_organization(self, customer: Customer, *, idempotency_key: str) -> str:
        """The ID of the organization whose ``external_id`` is the customer ID, created if
        missing. Zendesk's number, as a string: the support port's IDs are strings.

        Safe to repeat with any key: the unique ``external_id`` is the guard.
        ``idempotency_key`` is accepted so every write takes one, as flows expect.
        """
        existing = await self._find_organization(customer.customer_id)
        if existing is not None:
            return str(existing)
        body = {
            "organization": {
                "name": customer.name,
                "external_id": customer.customer_id,
                "tags": ["interlock"],
            }
        }
        try:
            # No Idempotency-Key here: Zendesk honours it on tickets only; the
            # unique external_id is what makes this create safe to repeat.
            created = await self._call("POST", "/organizations.json", body=body)
        except ValidationError as exc:
            # A concurrent delivery may have created it between search and create.
            if exc.field == "external_id":
                again = await self._find_organization(customer.customer_id)
                if again is not None:
                    return str(again)
            raise
        return str(created["organization"]["id"])

    async def activate_entitlement(
        self, organization_id: str, order: SalesOrder, *, idempotency_key: str
    ) -> SupportCase:
        """Mark the organization entitled to the order's plans and open one onboarding ticket."""
        org = _organization_number(organization_id)
        skus = sorted({line.sku for line in order.lines})
        await self._call(
            "PUT",
            f"/organizations/{org}.json",
            body={
                "organization": {
                    "organization_fields": {
                        "entitlement": skus,
                        "entitlement_status": "active",
                        "order_ref": order.order_ref,
                    }
                }
            },
        )
        found = await self._call("GET", "/tickets.json", params={"external_id": idempotency_key})
        tickets = found.get("tickets") or []
        if tickets:
            ticket = tickets[0]
        else:
            created = await self._call(
                "POST",
                "/tickets.json",
                idempotency_key=idempotency_key,
                body={
                    "ticket": {
                        "subject": f"Onboarding: {order.customer.name} ({order.order_ref})",
                        "comment": {
                            "body": (
                                f"Order {order.order_ref} is won. Entitled plans: "
                                f"{', '.join(skus)}. Please schedule onboarding."
                            )
                        },
                        "organization_id": org,
                        "external_id": idempotency_key,
                        "type": "task",
                        "priority": "normal",
                        "tags": ["interlock", "onboarding"],
                    }
                },
            )
            ticket = created["ticket"]
        return SupportCase(
            case_id=str(ticket["id"]),
            customer_id=order.customer.customer_id,
            subject=ticket.get("subject") or "",
            status=ticket["status"],
            priority=ticket.get("priority") or "normal",
            organization_id=ticket.get("organization_id"),
        )

    # -- credit holds ------------------------------------------------------

    async def _open_tickets(self, org: int) -> list[dict[str, Any]]:
        # The sandbox lists every ticket; Zendesk's /organizations/{id}/tickets.json
        # would narrow it server side. Solved and closed tickets are left alone.
        return [
            t
            async for t in self._each("/tickets.json", "tickets")
            if t.get("organization_id") == org and t.get("status") not in _DONE
        ]

    async def _note(self, org: int, line: str, *, held: bool) -> None:
        found = await self._call("GET", f"/organizations/{org}.json")
        notes = str(found["organization"].get("notes") or "")
        if line in notes:
            return  # a repeat of this step: the note is there already
        await self._call(
            "PUT",
            f"/organizations/{org}.json",
            body={
                "organization": {
                    "notes": f"{notes}\n{line}".strip(),
                    "organization_fields": {"credit_hold": held},
                }
            },
        )

    async def hold_cases(
        self, organization_id: str, *, note: str, idempotency_key: str
    ) -> dict[str, str]:
        """Raise the organization's open tickets to ``high``, tag them ``credit_hold``
        and note the hold on the organization. Returns ``{ticket_id: prior priority}``.

        The prior priority rides on the ticket as a tag (``credit_hold_prior_<p>``), so
        a repeat (a retry, a replay) skips tickets it raised and still reports them.
        """
        org = _organization_number(organization_id)
        priors: dict[str, str] = {}
        for ticket in await self._open_tickets(org):
            tags = list(ticket.get("tags") or [])
            marked = [t for t in tags if t.startswith(_PRIOR_TAG)]
            if HOLD_TAG in tags and marked:
                priors[str(ticket["id"])] = marked[0][len(_PRIOR_TAG) :]
                continue
            prior = str(ticket.get("priority") or "none")
            priors[str(ticket["id"])] = prior
            raised = "high" if prior in {"none", "low", "normal"} else prior
            await self._call(
                "PUT",
                f"/tickets/{ticket['id']}.json",
                body={
                    "ticket": {
                        "priority": raised,
                        "tags": [*tags, HOLD_TAG, _PRIOR_TAG + prior],
                        "comment": {"body": note, "public": False},
                    }
                },
            )
        await self._note(org, note, held=True)
        return priors

    async def release_cases(
        self, organization_id: str, *, note: str, idempotency_key: str
    ) -> list[str]:
        """Lift the hold: every ticket tagged ``credit_hold`` gets its prior priority
        back and loses the tags; the organization is noted. Returns the ticket IDs."""
        org = _organization_number(organization_id)
        released: list[str] = []
        for ticket in await self._open_tickets(org):
            tags = list(ticket.get("tags") or [])
            if HOLD_TAG not in tags:
                continue
            marked = [t[len(_PRIOR_TAG) :] for t in tags if t.startswith(_PRIOR_TAG)]
            prior = marked[0] if marked else "normal"
            await self._call(
                "PUT",
                f"/tickets/{ticket['id']}.json",
                body={
                    "ticket": {
                        "priority": None if prior == "none" else prior,
                        "tags": [t for t in tags if t != HOLD_TAG and not t.startswith(_PRIOR_TAG)],
                        "comment": {"body": note, "public": False},
                    }
                },
            )
            released.append(str(ticket["id"]))
        await self._note(org, note, held=False)
        return released


def _zendesk_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _organization_number(organization_id: str) -> int:
    """Zendesk's organization number from the port's string ID."""
    if not str(organization_id).isdigit():
        raise ValidationError(
            f"not a Zendesk organization ID: {organization_id!r}",
            field="organization_id",
            system=SYSTEM,
        )
    return int(organization_id)


def _record_invalid(response: httpx.Response) -> ValidationError:
    """Zendesk's 422 ``RecordInvalid`` as a ValidationError naming the first bad field."""
    field = None
    try:
        details = response.json().get("details") or {}
        field = next(iter(details), None)
    except (ValueError, AttributeError):
        details = {}
    return ValidationError(
        f"HTTP 422 from {response.request.method} {response.request.url.path}: "
        f"{response.text[:300]}",
        field=field,
        system=SYSTEM,
    )
