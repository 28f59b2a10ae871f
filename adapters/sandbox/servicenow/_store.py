"""The sandbox instance's tables: their dictionary (fields, choices, references)
and their records, kept as ServiceNow keeps them: every value a string.

Modelled tables (a small slice of Customer Service Management and ITSM), each
with the ``sys_*`` fields:

- ``customer_account``: name (mandatory), number (ACC…), notes, u_external_id, active;
- ``sn_customerservice_case``: number (CS…), short_description (mandatory),
  description, account (reference to customer_account), priority 1–4, state,
  active, correlation_id, contact, u_tags, contact_type, work_notes, comments;
- ``incident``: number (INC…), short_description (mandatory), description,
  priority 1–5, state, active, correlation_id, work_notes, comments;
- ``sys_journal_field``: element_id, name, element, value (one row per work note
  or comment; read-only through the API).

``work_notes`` and ``comments`` are journal fields, as on an instance: a write
appends a ``sys_journal_field`` row; reading the field gives ``""`` as its value
and the entries, newest first, as its display value.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._query import EncodedQuery

__all__ = ["TABLES", "FieldSpec", "Invalid", "NotFound", "Store", "TableSpec", "UnknownTable"]

Record = dict[str, str]


class UnknownTable(Exception):
    """400 ``Invalid table <name>``."""


class NotFound(Exception):
    """404 ``No Record found``."""


class Invalid(Exception):
    """A write the instance refuses: ``status`` 400 (a bad value) or 403 (a data policy)."""

    def __init__(self, message: str, detail: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.detail, self.status = message, detail, status


@dataclass(frozen=True)
class FieldSpec:
    label: str
    kind: str = "string"  # string | choice | reference | journal | boolean | integer
    choices: Mapping[str, str] = field(default_factory=dict)
    reference: str | None = None
    mandatory: bool = False
    default: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    label: str
    fields: Mapping[str, FieldSpec]
    #: The field a reference to this table displays.
    display: str = "number"
    #: The prefix of auto-numbered records (``number``), if any.
    prefix: str | None = None
    #: States that make a task inactive.
    closed_states: frozenset[str] = frozenset()
    writable_by_api: bool = True


_SYS = {
    "sys_id": FieldSpec("Sys ID", read_only=True),
    "sys_created_on": FieldSpec("Created", read_only=True),
    "sys_created_by": FieldSpec("Created by", read_only=True),
    "sys_updated_on": FieldSpec("Updated", read_only=True),
    "sys_updated_by": FieldSpec("Updated by", read_only=True),
    "sys_mod_count": FieldSpec("Updates", "integer", read_only=True),
    "sys_class_name": FieldSpec("Class", read_only=True),
}
_CASE_STATES = {
    "1": "New",
    "10": "Open",
    "18": "Awaiting Info",
    "6": "Resolved",
    "3": "Closed",
    "7": "Cancelled",
}
_CASE_PRIORITIES = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low"}
_INCIDENT_STATES = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
_INCIDENT_PRIORITIES = {**_CASE_PRIORITIES, "5": "5 - Planning"}

TABLES: dict[str, TableSpec] = {
    "customer_account": TableSpec(
        "customer_account",
        "Account",
        {
            **_SYS,
            "number": FieldSpec("Number", read_only=True),
            "name": FieldSpec("Name", mandatory=True),
            "notes": FieldSpec("Notes"),
            "u_external_id": FieldSpec("External ID"),
            "active": FieldSpec("Active", "boolean", default="true"),
        },
        display="name",
        prefix="ACC",
    ),
    "sn_customerservice_case": TableSpec(
        "sn_customerservice_case",
        "Case",
        {
            **_SYS,
            "number": FieldSpec("Number", read_only=True),
            "short_description": FieldSpec("Short description", mandatory=True),
            "description": FieldSpec("Description"),
            "account": FieldSpec("Account", "reference", reference="customer_account"),
            "priority": FieldSpec("Priority", "choice", _CASE_PRIORITIES, default="4"),
            "state": FieldSpec("State", "choice", _CASE_STATES, default="1"),
            "active": FieldSpec("Active", "boolean", default="true", read_only=True),
            "correlation_id": FieldSpec("Correlation ID"),
            "contact": FieldSpec("Contact"),
            "u_tags": FieldSpec("Tags"),
            "contact_type": FieldSpec(
                "Channel",
                "choice",
                {"": "-- None --", "email": "Email", "phone": "Phone", "web": "Web"},
            ),
            "work_notes": FieldSpec("Work notes", "journal"),
            "comments": FieldSpec("Additional comments", "journal"),
        },
        prefix="CS",
        closed_states=frozenset({"3", "7"}),
    ),
    "incident": TableSpec(
        "incident",
        "Incident",
        {
            **_SYS,
            "number": FieldSpec("Number", read_only=True),
            "short_description": FieldSpec("Short description", mandatory=True),
            "description": FieldSpec("Description"),
            "priority": FieldSpec("Priority", "choice", _INCIDENT_PRIORITIES, default="5"),
            "state": FieldSpec("State", "choice", _INCIDENT_STATES, default="1"),
            "active": FieldSpec("Active", "boolean", default="true", read_only=True),
            "correlation_id": FieldSpec("Correlation ID"),
            "work_notes": FieldSpec("Work notes", "journal"),
            "comments": FieldSpec("Additional comments", "journal"),
        },
        prefix="INC",
        closed_states=frozenset({"7", "8"}),
    ),
    "sys_journal_field": TableSpec(
        "sys_journal_field",
        "Journal Entry",
        {
            **_SYS,
            "element_id": FieldSpec("Element ID"),
            "name": FieldSpec("Table"),
            "element": FieldSpec("Element"),
            "value": FieldSpec("Value"),
        },
        display="value",
        writable_by_api=False,
    ),
}


def _timestamp(value: datetime) -> str:
    # The Table API's format for date-time values (UTC).
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class Store:
    """Every table's records; each method is atomic under one lock."""

    def __init__(
        self, *, user: str = "interlock.integration", clock: Callable[[], datetime] | None = None
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.user = user
        self.records: dict[str, dict[str, Record]] = {name: {} for name in TABLES}
        self._numbers = {name: itertools.count(1001) for name in TABLES}
        self._seq = itertools.count(1)
        #: Data policies an administrator added: (table, field) pairs made mandatory.
        self.data_policies: set[tuple[str, str]] = set()

    @staticmethod
    def spec(table: str) -> TableSpec:
        spec = TABLES.get(table)
        if spec is None:
            raise UnknownTable(table)
        return spec

    # -- reads -------------------------------------------------------------
    def query(self, table: str, query: EncodedQuery) -> list[Record]:
        """The records matching ``query``, in its order (else creation order)."""
        self.spec(table)
        with self._lock:
            rows = [dict(r) for r in self.records[table].values() if query.matches(r)]
            query.sort(rows, lambda r, name: r.get(name, ""))
            return rows

    def get(self, table: str, sys_id: str) -> Record:
        spec = self.spec(table)
        with self._lock:
            record = self.records[spec.name].get(sys_id)
            if record is None:
                raise NotFound(sys_id)
            return dict(record)

    def render(
        self,
        table: str,
        record: Record,
        *,
        display: str,
        fields: list[str] | None,
        links: bool,
        base_url: str,
    ) -> dict[str, Any]:
        """``record`` as the Table API answers it for ``sysparm_display_value`` = ``display``
        (``false``, ``true`` or ``all``) and ``sysparm_fields``."""
        spec = self.spec(table)
        names = [n for n in (fields or list(spec.fields)) if n in spec.fields]
        out: dict[str, Any] = {}
        with self._lock:
            for name in names:
                f = spec.fields[name]
                value = record.get(name, "")
                shown = self._display(spec, name, f, record, value)
                link = None
                if f.kind == "reference" and value and links:
                    link = f"{base_url}/api/now/table/{f.reference}/{value}"
                if display == "all":
                    item: dict[str, Any] = {"display_value": shown, "value": value}
                    if link:
                        item["link"] = link
                    out[name] = item
                elif display == "true":
                    out[name] = {"display_value": shown, "link": link} if link else shown
                else:
                    out[name] = {"value": value, "link": link} if link else value
        return out

    def _display(self, spec: TableSpec, name: str, f: FieldSpec, record: Record, value: str) -> str:
        if f.kind == "choice":
            return f.choices.get(value, value)
        if f.kind == "reference" and value and f.reference:
            target = self.records[f.reference].get(value)
            return target.get(TABLES[f.reference].display, "") if target else ""
        if f.kind == "journal":
            entries = [
                j
                for j in self.records["sys_journal_field"].values()
                if j["element_id"] == record.get("sys_id")
                and j["name"] == spec.name
                and j["element"] == name
            ]
            entries.sort(key=lambda j: int(j["sys_mod_count"]), reverse=True)
            return "\n\n".join(
                f"{j['sys_created_on']} - {j['sys_created_by']} ({f.label})\n{j['value']}"
                for j in entries
            )
        return value

    # -- writes ------------------------------------------------------------
    def insert(self, table: str, data: Mapping[str, Any]) -> Record:
        """Create a record from a POST body; unknown fields are ignored, as on an instance."""
        spec = self._writable(table)
        with self._lock:
            now = _timestamp(self._clock())
            sys_id = uuid.uuid4().hex
            record: Record = {name: f.default for name, f in spec.fields.items()}
            record.update(
                sys_id=sys_id,
                sys_created_on=now,
                sys_created_by=self.user,
                sys_updated_on=now,
                sys_updated_by=self.user,
                sys_mod_count="0",
                sys_class_name=spec.name,
            )
            if spec.prefix:
                record["number"] = f"{spec.prefix}{next(self._numbers[spec.name]):07d}"
            journal = self._apply(spec, record, data)
            self._check(spec, record)
            self.records[spec.name][sys_id] = record
            self._journal(spec, record, journal, now)
            return dict(record)

    def update(self, table: str, sys_id: str, data: Mapping[str, Any]) -> Record:
        """Apply a PATCH or PUT; a refused write leaves the record unchanged."""
        spec = self._writable(table)
        with self._lock:
            current = self.records[spec.name].get(sys_id)
            if current is None:
                raise NotFound(sys_id)
            record = dict(current)
            journal = self._apply(spec, record, data)
            self._check(spec, record)
            now = _timestamp(self._clock())
            record.update(
                sys_updated_on=now,
                sys_updated_by=self.user,
                sys_mod_count=str(int(record["sys_mod_count"]) + 1),
            )
            current.update(record)
            self._journal(spec, current, journal, now)
            return dict(current)

    def set_data_policy(self, table: str, name: str, *, mandatory: bool) -> None:
        """Make ``table.name`` mandatory (or not), as an administrator's data policy does."""
        spec = self.spec(table)
        if name not in spec.fields:
            raise ValueError(f"{table} has no field {name!r}")
        with self._lock:
            if mandatory:
                self.data_policies.add((table, name))
            else:
                self.data_policies.discard((table, name))

    def delete(self, table: str, sys_id: str) -> None:
        spec = self._writable(table)
        with self._lock:
            if self.records[spec.name].pop(sys_id, None) is None:
                raise NotFound(sys_id)

    def _writable(self, table: str) -> TableSpec:
        spec = self.spec(table)
        if not spec.writable_by_api:
            raise Invalid(
                "Operation Failed",
                f"ACL Exception Insert/Update/Delete Failed due to security constraints "
                f"on table {table}",
                status=403,
            )
        return spec

    @staticmethod
    def _apply(spec: TableSpec, record: Record, data: Mapping[str, Any]) -> dict[str, str]:
        """Copy writable values into ``record``; returns the journal entries to append."""
        journal: dict[str, str] = {}
        for name, raw in data.items():
            f = spec.fields.get(name)
            if f is None or f.read_only:
                continue  # an instance ignores fields it does not know or lets nobody write
            value = _as_text(raw)
            if f.kind == "journal":
                if value:
                    journal[name] = value
                continue
            if f.kind == "choice" and value not in f.choices:
                raise Invalid(
                    "Invalid value for field",
                    f"{f.label} ({name}): {value!r} is not one of {sorted(f.choices)}",
                )
            record[name] = value
        if spec.closed_states:
            record["active"] = "false" if record.get("state") in spec.closed_states else "true"
        return journal

    def _check(self, spec: TableSpec, record: Record) -> None:
        missing = [
            f.label
            for n, f in spec.fields.items()
            if (f.mandatory or (spec.name, n) in self.data_policies) and not record.get(n)
        ]
        if missing:
            # What a data policy answers: 403 "Operation Failed".
            raise Invalid(
                "Operation Failed",
                "Data Policy Exception: \n The following fields are mandatory: "
                + ", ".join(missing),
                status=403,
            )
        for name, f in spec.fields.items():
            value = record.get(name, "")
            dangling = f.reference and value and value not in self.records[f.reference]
            if f.kind == "reference" and dangling:
                raise Invalid(
                    "Invalid value for field",
                    f"{f.label} ({name}): no {f.reference} record with sys_id {value}",
                )

    def _journal(self, spec: TableSpec, record: Record, entries: dict[str, str], now: str) -> None:
        for element, value in entries.items():
            sys_id = uuid.uuid4().hex
            self.records["sys_journal_field"][sys_id] = {
                "sys_id": sys_id,
                "sys_created_on": now,
                "sys_created_by": self.user,
                "sys_updated_on": now,
                "sys_updated_by": self.user,
                # Orders entries written within one second.
                "sys_mod_count": str(next(self._seq)),
                "sys_class_name": "sys_journal_field",
                "element_id": record["sys_id"],
                "name": spec.name,
                "element": element,
                "value": value,
            }


def _as_text(raw: Any) -> str:
    """A JSON value as the instance stores it: a string (``True`` -> ``"true"``)."""
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, dict):
        # A field sent as {"value": ...} (pysnc serializes some that way).
        return _as_text(raw.get("value"))
    return str(raw)
