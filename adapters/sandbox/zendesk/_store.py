"""The sandbox's in-memory Zendesk account: organizations and tickets.

Validation answers as Zendesk does, with ``RecordInvalid`` and per-field
details. Every write takes the next value of one sequence, which orders the
incremental export exactly even within one second of ``updated_at``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["PRIORITIES", "STATUSES", "Invalid", "NotFound", "Store"]

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("urgent", "high", "normal", "low")
TYPES = ("problem", "incident", "question", "task")

Record = dict[str, Any]


class Invalid(Exception):
    """422 ``RecordInvalid``; ``details`` maps field -> [{"description","error"}]."""

    def __init__(self, details: dict[str, list[dict[str, str]]]) -> None:
        super().__init__("Record validation errors")
        self.details = details

    @classmethod
    def one(cls, field: str, description: str, error: str = "InvalidValue") -> Invalid:
        return cls({field: [{"description": description, "error": error}]})


class NotFound(Exception):
    """404 ``RecordNotFound``."""


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Organizations and tickets; every method is atomic under one lock."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.organizations: dict[int, Record] = {}
        self.tickets: dict[int, Record] = {}
        self._org_ids = itertools.count(360000000001)
        self._ticket_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._ticket_seq: dict[int, int] = {}
        self._ticket_time: dict[int, float] = {}

    # -- organizations -----------------------------------------------------
    def _check_org(self, data: Record, current: int | None) -> None:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Invalid.one("name", "Name: cannot be blank", "BlankValue")
        for key in ("name", "external_id"):
            value = data.get(key)
            if value is None:
                continue
            for org in self.organizations.values():
                if org["id"] != current and org.get(key) == value:
                    label = "Name" if key == "name" else "External"
                    raise Invalid.one(
                        key, f"{label}: {value} has already been taken", "DuplicateValue"
                    )
        fields = data.get("organization_fields", {})
        if not isinstance(fields, dict):
            raise Invalid.one("organization_fields", "Organization fields: must be an object")
        tags = data.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise Invalid.one("tags", "Tags: must be a list of strings")

    def create_organization(self, data: Record, base_url: str) -> Record:
        """Create from a request's ``organization`` object; 422 on a bad or taken value."""
        with self._lock:
            self._check_org(data, None)
            now = _timestamp(self._clock())
            org_id = next(self._org_ids)
            org: Record = {
                "id": org_id,
                "url": f"{base_url}/api/v2/organizations/{org_id}.json",
                "name": data["name"],
                "external_id": data.get("external_id"),
                "details": data.get("details"),
                "notes": data.get("notes"),
                "organization_fields": dict(data.get("organization_fields") or {}),
                "tags": list(data.get("tags") or []),
                "created_at": now,
                "updated_at": now,
            }
            self.organizations[org_id] = org
            return dict(org)

    def update_organization(self, org_id: int, data: Record) -> Record:
        """Apply a PUT; ``organization_fields`` merge key by key."""
        with self._lock:
            org = self._org(org_id)
            merged = {**org, **{k: v for k, v in data.items() if k in org and k != "id"}}
            # Zendesk merges organization_fields: keys not sent keep their values.
            merged["organization_fields"] = {
                **org["organization_fields"],
                **(data.get("organization_fields") or {}),
            }
            self._check_org(merged, org_id)
            merged["updated_at"] = _timestamp(self._clock())
            org.update(merged)
            return dict(org)

    def _org(self, org_id: int) -> Record:
        org = self.organizations.get(org_id)
        if org is None:
            raise NotFound
        return org

    def get_organization(self, org_id: int) -> Record:
        """One organization, or ``NotFound``."""
        with self._lock:
            return dict(self._org(org_id))

    def find_organizations(self, **where: str) -> list[Record]:
        """Organizations whose fields equal every given value (search.json)."""
        with self._lock:
            return [
                dict(o)
                for o in self.organizations.values()
                if all(str(o.get(k)) == v for k, v in where.items())
            ]

    def list_organizations(self) -> list[Record]:
        """Every organization, in creation order."""
        with self._lock:
            return [dict(o) for o in self.organizations.values()]

    # -- tickets -----------------------------------------------------------
    def _check_ticket(self, ticket: Record) -> None:
        details: dict[str, list[dict[str, str]]] = {}

        def bad(field: str, text: str, error: str = "InvalidValue") -> None:
            details.setdefault(field, []).append({"description": text, "error": error})

        if not ticket.get("description"):
            bad("description", "Description: cannot be blank", "BlankValue")
        if ticket.get("status") not in STATUSES:
            bad("status", f"Status: {ticket.get('status')} is not valid")
        if ticket.get("priority") is not None and ticket["priority"] not in PRIORITIES:
            bad("priority", f"Priority: {ticket['priority']} is not valid")
        if ticket.get("type") is not None and ticket["type"] not in TYPES:
            bad("type", f"Type: {ticket['type']} is not valid")
        org_id = ticket.get("organization_id")
        if org_id is not None and org_id not in self.organizations:
            bad("organization_id", "Organization: is invalid")
        tags = ticket.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            bad("tags", "Tags: must be a list of strings")
        custom = ticket.get("custom_fields")
        if not isinstance(custom, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), int) for c in custom
        ):
            bad("custom_fields", "Custom fields: must be a list of {id, value}")
        if details:
            raise Invalid(details)

    def create_ticket(self, data: Record, base_url: str) -> Record:
        """Create from a request's ``ticket``; the description is the first comment."""
        comment = data.get("comment") or {}
        description = data.get("description") or (
            comment.get("body") if isinstance(comment, dict) else None
        )
        with self._lock:
            now = self._clock()
            ticket_id = next(self._ticket_ids)
            ticket: Record = {
                "id": ticket_id,
                "url": f"{base_url}/api/v2/tickets/{ticket_id}.json",
                "external_id": data.get("external_id"),
                "type": data.get("type"),
                "subject": data.get("subject") or (description or "")[:80],
                "description": description,
                "priority": data.get("priority"),
                "status": data.get("status") or "new",
                "organization_id": data.get("organization_id"),
                "tags": list(data.get("tags") or []),
                "custom_fields": list(data.get("custom_fields") or []),
                "created_at": _timestamp(now),
                "updated_at": _timestamp(now),
            }
            self._check_ticket(ticket)
            self.tickets[ticket_id] = ticket
            self._ticket_seq[ticket_id] = next(self._seq)
            self._ticket_time[ticket_id] = now.timestamp()
            return dict(ticket)

    def update_ticket(self, ticket_id: int, data: Record) -> Record:
        """Apply a PUT to the writable fields; 422 leaves the ticket unchanged."""
        with self._lock:
            ticket = self.tickets.get(ticket_id)
            if ticket is None:
                raise NotFound
            writable = {
                "subject",
                "priority",
                "status",
                "organization_id",
                "tags",
                "custom_fields",
                "external_id",
                "type",
            }
            merged = {**ticket, **{k: v for k, v in data.items() if k in writable}}
            self._check_ticket(merged)
            now = self._clock()
            merged["updated_at"] = _timestamp(now)
            ticket.update(merged)
            self._ticket_seq[ticket_id] = next(self._seq)
            self._ticket_time[ticket_id] = now.timestamp()
            return dict(ticket)

    def get_ticket(self, ticket_id: int) -> Record:
        """One ticket, or ``NotFound``."""
        with self._lock:
            ticket = self.tickets.get(ticket_id)
            if ticket is None:
                raise NotFound
            return dict(ticket)

    def list_tickets(self, external_id: str | None = None) -> list[Record]:
        """Every ticket, or those with ``external_id``."""
        with self._lock:
            return [
                dict(t)
                for t in self.tickets.values()
                if external_id is None or t.get("external_id") == external_id
            ]

    def ticket_changes(
        self, *, start_time: float | None, after_seq: int | None, limit: int
    ) -> tuple[list[Record], int | None, bool]:
        """Tickets changed since a time or a cursor position, in change order.

        Returns ``(tickets, last_seq, end_of_stream)``.
        """
        with self._lock:
            order = sorted(self.tickets, key=lambda tid: self._ticket_seq[tid])
            chosen = [
                tid
                for tid in order
                if (after_seq is None or self._ticket_seq[tid] > after_seq)
                and (start_time is None or self._ticket_time[tid] >= start_time)
            ]
            page = chosen[:limit]
            last = self._ticket_seq[page[-1]] if page else after_seq
            return [dict(self.tickets[t]) for t in page], last, len(chosen) <= limit
