"""The sandbox's in-memory org: records, SOQL evaluation, query cursors.

Values are kept typed (``Decimal``, ``date``, ``datetime``) and rendered the
way Salesforce's REST API renders them only on the way out. A lock makes every
operation atomic, so the store is safe from the event loop and from threads.

Simplification, on purpose: ``Opportunity.Amount`` is not rolled up from line
items (orgs that override it behave like this), so a mismatch can be seeded.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ._errors import SalesforceError
from ._evaluate import check_literal, comparable, comparator, like_matcher, sort_rows
from ._schema import (
    BOOLEAN,
    DATE,
    NUMERIC,
    REFERENCE,
    SCHEMAS,
    TEXTUAL,
    FieldSpec,
    ObjectSchema,
    base62,
    id18,
    is_salesforce_id,
)
from ._soql import And, Expr, InList, Like, Not, Or, SoqlError, parse

__all__ = ["CURRENCIES", "SalesforceError", "Store", "format_datetime"]

CURRENCIES = frozenset({"USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "SEK"})
#: Restricted picklists: (sObject, field) -> the values the org accepts.
PICKLISTS: dict[tuple[str, str], frozenset[str]] = {
    ("Opportunity", "ERP_Order_Status__c"): frozenset(
        {"draft", "quotation", "confirmed", "processing", "done", "cancelled"}
    ),
    ("Task", "Status"): frozenset(
        {"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"}
    ),
    ("Task", "Priority"): frozenset({"High", "Normal", "Low"}),
    ("Opportunity", "Credit_Hold_Reason__c"): frozenset({"credit"}),
    ("Account", "Credit_Hold_Reason__c"): frozenset({"credit"}),
}
#: Unique external-ID fields: a second record with the same value is refused.
UNIQUE_FIELDS: dict[str, tuple[str, ...]] = {"Task": ("Interlock_Key__c",)}
MAX_BATCH = 2000
MIN_BATCH = 200
_MAX_CURSORS = 200

Record = dict[str, Any]


def format_datetime(value: datetime) -> str:
    """Salesforce's rendering: ``2026-11-26T10:00:00.000+0000``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


@dataclass
class _Cursor:
    records: list[Record]
    batch: int
    endpoint: str  # "query" or "queryAll": where the next page is fetched


class Store:
    """One org's data. ``page_size`` is the default query batch (2000 in Salesforce)."""

    def __init__(self, *, page_size: int = MAX_BATCH, clock: Callable[[], datetime] | None = None):
        self.page_size = page_size
        self._base_clock = clock or (lambda: datetime.now(UTC))
        #: Added to the clock: ``POST /_sandbox/clock`` moves the org's time (tests of outages).
        self.clock_offset = timedelta(0)
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._types: dict[str, str] = {}
        self._counter = itertools.count(1)
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._last_stamp = datetime(2000, 1, 1, tzinfo=UTC)
        self.api_requests = 0
        #: The org's standard price book, which every org has from the start.
        self.standard_pricebook_id = self._seed(
            "Pricebook2", {"Name": "Standard Price Book", "IsActive": True, "IsStandard": True}
        )

    def _seed(self, sobject: str, values: dict[str, Any]) -> str:
        schema = self.schema(sobject)
        record: Record = {name: None for name in schema.fields}
        record.update(values)
        stamp = self._stamp()
        record_id = self._new_id(schema.key_prefix)
        record.update(
            Id=record_id,
            IsDeleted=False,
            CreatedDate=stamp,
            LastModifiedDate=stamp,
            SystemModstamp=stamp,
        )
        self._records[record_id] = record
        self._types[record_id] = schema.name
        return record_id

    def count_request(self) -> int:
        """Count one API request against the daily allowance; returns the new total."""
        with self._lock:
            self.api_requests += 1
            return self.api_requests

    # -- ids and time ------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return id18(prefix + "Wz" + base62(next(self._counter), 10))

    def now(self) -> datetime:
        """The org's time: the clock plus ``clock_offset``."""
        return (self._base_clock() + self.clock_offset).astimezone(UTC)

    def set_clock_offset(self, seconds: float) -> datetime:
        """Run the org's clock ``seconds`` off the real one (negative: behind); its new now.

        Stamps stay strictly increasing while the clock only moves forward. Moving
        it back lets later writes be stamped before earlier ones (a real org's
        clock never does that), which is what a test of "deals closed an hour
        ago" needs: set the clock back before the writes the test reads.
        """
        if not math.isfinite(seconds) or abs(seconds) > 366 * 86400:
            raise ValueError("offset_seconds must be a finite number of at most a year")
        with self._lock:
            self.clock_offset = timedelta(seconds=seconds)
            self._last_stamp = min(self._last_stamp, self.now() - timedelta(milliseconds=1))
        return self.now()

    def _stamp(self) -> datetime:
        # Strictly increasing at Salesforce's millisecond precision, so a change
        # feed that reads "> last seen" never skips or repeats a write.
        clock = self.now()
        now = clock.replace(microsecond=clock.microsecond // 1000 * 1000)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    # -- schema helpers ----------------------------------------------------
    @staticmethod
    def schema(sobject: str) -> ObjectSchema:
        """The schema of a REST path's sObject, case-insensitively (404 if unknown)."""
        for name, schema in SCHEMAS.items():
            if name.lower() == sobject.lower():
                return schema
        raise SalesforceError(
            404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{sobject}'"
        )

    def _coerce(self, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        bad = SalesforceError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {spec.type} from value {value!r} "
            f"for field {spec.name}",
            [spec.name],
        )
        if spec.type in TEXTUAL:
            if not isinstance(value, str):
                raise bad
            if spec.type == REFERENCE:
                return self._reference(spec, value)
            return value
        if spec.type in NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise bad
            try:
                return Decimal(str(value))
            except InvalidOperation as exc:
                raise bad from exc
        if spec.type == BOOLEAN:
            if not isinstance(value, bool):
                raise bad
            return value
        if spec.type == DATE:
            try:
                return date.fromisoformat(str(value))
            except ValueError as exc:
                raise bad from exc
        raise bad

    def _reference(self, spec: FieldSpec, value: str) -> str:
        if not is_salesforce_id(value):
            raise SalesforceError(
                400,
                "MALFORMED_ID",
                f"{spec.name}: id value of incorrect type: {value}",
                [spec.name],
            )
        target = id18(value)
        if self._types.get(target) != spec.references or self._records[target]["IsDeleted"]:
            raise SalesforceError(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                f"invalid cross reference id: {value}",
                [spec.name],
            )
        return target

    def _apply(self, schema: ObjectSchema, record: Record, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key == "attributes":
                continue
            spec = schema.field(key)
            if spec is None:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {schema.name}",
                    [key],
                )
            if not spec.writable:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {spec.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your "
                    "profile or permission set.",
                    [spec.name],
                )
            record[spec.name] = self._coerce(spec, value)
        if schema.name == "Opportunity":
            code = record.get("CurrencyIsoCode")
            if code is not None and code not in CURRENCIES:
                raise SalesforceError(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"Currency ISO Code: invalid currency code: {code}",
                    ["CurrencyIsoCode"],
                )
            stage = record.get("StageName") or ""
            record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
            record["IsWon"] = stage == "Closed Won"
        for (sobject, name), allowed in PICKLISTS.items():
            value = record.get(name)
            if sobject == schema.name and value is not None and value not in allowed:
                raise SalesforceError(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{name}: bad value for restricted picklist field: {value}",
                    [name],
                )
        if schema.name == "OpportunityLineItem":
            self._price_line(record, data)
        if schema.name == "PricebookEntry":
            self._pricebook_entry(record, data)

    def _unique(self, schema: ObjectSchema, record: Record) -> None:
        for name in UNIQUE_FIELDS.get(schema.name, ()):
            value = record.get(name)
            if value is None:
                continue
            for other_id, other in self._records.items():
                if (
                    other_id != record.get("Id")
                    and self._types[other_id] == schema.name
                    and not other["IsDeleted"]
                    and other.get(name) == value
                ):
                    raise SalesforceError(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{other_id}",
                        [name],
                    )

    @staticmethod
    def _price_line(record: Record, data: dict[str, Any]) -> None:
        keys = {k.lower() for k in data}
        quantity = record.get("Quantity")
        if quantity is not None and quantity <= 0:
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "Quantity must be greater than zero",
                ["Quantity"],
            )
        if "unitprice" in keys and "totalprice" in keys:
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: TotalPrice (cannot specify both unit price and "
                "total price)",
                ["TotalPrice"],
            )
        if quantity is None:
            return
        if "totalprice" in keys and record.get("TotalPrice") is not None:
            record["UnitPrice"] = record["TotalPrice"] / quantity
        elif record.get("UnitPrice") is not None:
            record["TotalPrice"] = record["UnitPrice"] * quantity

    def _pricebook_entry(self, record: Record, data: dict[str, Any]) -> None:
        """Salesforce's rules for a price book entry: its book and product are fixed once
        made, one entry per (book, product, currency), a standard price before any other,
        and the entry shows the product's code and name."""
        keys = {k.lower() for k in data}
        if record.get("Id") is not None and keys & {"pricebook2id", "product2id"}:
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: Pricebook2Id, Product2Id (cannot be changed)",
                ["Pricebook2Id", "Product2Id"],
            )
        product_id, book_id = record.get("Product2Id"), record.get("Pricebook2Id")
        if product_id is None or book_id is None:
            return
        product = self._records.get(product_id) or {}
        record["ProductCode"] = product.get("ProductCode")
        record["Name"] = product.get("Name")
        if record.get("CurrencyIsoCode") is None:
            record["CurrencyIsoCode"] = "USD"
        if record.get("IsActive") is None:
            record["IsActive"] = False
        if record.get("UseStandardPrice") is None:
            record["UseStandardPrice"] = False
        for other_id, other in self._records.items():
            if (
                other_id != record.get("Id")
                and self._types[other_id] == "PricebookEntry"
                and not other["IsDeleted"]
                and other.get("Product2Id") == product_id
                and other.get("Pricebook2Id") == book_id
                and other.get("CurrencyIsoCode") == record["CurrencyIsoCode"]
            ):
                raise SalesforceError(
                    400,
                    "DUPLICATE_VALUE",
                    "This price definition already exists in this price book",
                    [],
                )
        if book_id != self.standard_pricebook_id and not any(
            self._types[other_id] == "PricebookEntry"
            and not other["IsDeleted"]
            and other.get("Product2Id") == product_id
            and other.get("Pricebook2Id") == self.standard_pricebook_id
            and other.get("CurrencyIsoCode") == record["CurrencyIsoCode"]
            for other_id, other in self._records.items()
        ):
            raise SalesforceError(
                400,
                "STANDARD_PRICE_NOT_DEFINED",
                "Before creating a custom price, create a standard price.",
                [],
            )

    def _required(self, schema: ObjectSchema, record: Record) -> None:
        missing = [n for n, s in schema.fields.items() if s.required and record.get(n) is None]
        if schema.name == "OpportunityLineItem" and record.get("UnitPrice") is None:
            missing.append("UnitPrice")
        if missing:
            raise SalesforceError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )

    # -- CRUD --------------------------------------------------------------
    def create(self, sobject: str, data: dict[str, Any]) -> str:
        """Insert a record from a REST body; returns its 18-character ID."""
        schema = self.schema(sobject)
        with self._lock:
            record: Record = {name: None for name in schema.fields}
            self._apply(schema, record, data)
            self._required(schema, record)
            self._unique(schema, record)
            stamp = self._stamp()
            record_id = self._new_id(schema.key_prefix)
            record.update(
                Id=record_id,
                IsDeleted=False,
                CreatedDate=stamp,
                LastModifiedDate=stamp,
                SystemModstamp=stamp,
            )
            self._records[record_id] = record
            self._types[record_id] = schema.name
            return record_id

    def _live(self, schema: ObjectSchema, record_id: str) -> Record:
        key = id18(record_id) if is_salesforce_id(record_id) else record_id
        if self._types.get(key) != schema.name:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist", [])
        record = self._records[key]
        if record["IsDeleted"]:
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return record

    def get(self, sobject: str, record_id: str, version: str, fields: list[str] | None) -> Record:
        """One live record as the REST API renders it (all fields or ``fields``)."""
        schema = self.schema(sobject)
        with self._lock:
            record = self._live(schema, record_id)
            names = list(schema.fields)
            if fields:
                names = []
                for name in fields:
                    spec = schema.field(name)
                    if spec is None:
                        raise SalesforceError(
                            400,
                            "INVALID_FIELD",
                            f"No such column '{name}' on entity '{schema.name}'",
                            [name],
                        )
                    names.append(spec.name)
            out: Record = {"attributes": self._attributes(schema.name, record["Id"], version)}
            for name in names:
                out[name] = _jsonable(record[name])
            return out

    def update(self, sobject: str, record_id: str, data: dict[str, Any]) -> None:
        """Apply a PATCH body; validation failures leave the record unchanged."""
        schema = self.schema(sobject)
        with self._lock:
            record = self._live(schema, record_id)
            draft = dict(record)
            self._apply(schema, draft, data)
            self._required(schema, draft)
            self._unique(schema, draft)
            stamp = self._stamp()
            draft.update(LastModifiedDate=stamp, SystemModstamp=stamp)
            record.update(draft)

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft-delete (``IsDeleted``), as Salesforce's recycle bin does."""
        schema = self.schema(sobject)
        with self._lock:
            record = self._live(schema, record_id)
            stamp = self._stamp()
            record.update(IsDeleted=True, SystemModstamp=stamp)
            if schema.name == "Opportunity":
                # Line items go with their opportunity, as in Salesforce.
                for child in self._records.values():
                    if child.get("OpportunityId") == record["Id"] and not child["IsDeleted"]:
                        child.update(IsDeleted=True, SystemModstamp=stamp)

    def touch(self, record_id: str) -> str:
        """Bump SystemModstamp without a field change; returns the new stamp."""
        with self._lock:
            key = id18(record_id) if is_salesforce_id(record_id) else record_id
            if key not in self._records:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            stamp = self._stamp()
            self._records[key]["SystemModstamp"] = stamp
            return format_datetime(stamp)

    def stats(self) -> dict[str, Any]:
        """Live record counts per sObject and the API request count."""
        with self._lock:
            counts: dict[str, int] = {name: 0 for name in SCHEMAS}
            for record_id, kind in self._types.items():
                if not self._records[record_id]["IsDeleted"]:
                    counts[kind] += 1
            return {"records": counts, "api_requests": self.api_requests}

    @staticmethod
    def _attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
        return {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{record_id}"}

    # -- SOQL --------------------------------------------------------------
    def query(
        self, soql: str, *, version: str, include_deleted: bool = False, batch: int | None = None
    ) -> dict[str, Any]:
        """Run a query and answer its first page (``done``, ``nextRecordsUrl``...)."""
        try:
            query = parse(soql)
        except SoqlError as exc:
            raise SalesforceError(400, exc.code, exc.message) from exc
        schema = self.schema_for_query(query.sobject)
        getters = [self._getter(schema, path) for path in query.fields]
        predicate = self._compile(schema, query.where) if query.where else None
        order = [(self._getter(schema, o.field)[1], o) for o in query.order_by]
        with self._lock:
            rows = [
                r
                for rid, r in self._records.items()
                if self._types[rid] == schema.name and (include_deleted or not r["IsDeleted"])
            ]
            if predicate is not None:
                rows = [r for r in rows if predicate(r)]
            rows = sort_rows(rows, order)
            rows = rows[query.offset :]
            if query.limit is not None:
                rows = rows[: query.limit]
            out = [self._project(schema, r, query.fields, getters, version) for r in rows]
            size = max(MIN_BATCH, min(MAX_BATCH, batch)) if batch else self.page_size
            locator = "01g" + "Wz" + base62(next(self._counter), 10)
            locator = id18(locator)
            self._cursors[locator] = _Cursor(out, size, "queryAll" if include_deleted else "query")
            while len(self._cursors) > _MAX_CURSORS:
                self._cursors.popitem(last=False)
            return self._page(locator, 0, version)

    def query_more(self, locator: str, offset: int, *, version: str) -> dict[str, Any]:
        """The page of an open query cursor starting at ``offset``."""
        with self._lock:
            if locator not in self._cursors:
                raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator", [])
            return self._page(locator, offset, version)

    def _page(self, locator: str, offset: int, version: str) -> dict[str, Any]:
        cursor = self._cursors[locator]
        end = offset + cursor.batch
        page: dict[str, Any] = {
            "totalSize": len(cursor.records),
            "done": end >= len(cursor.records),
            "records": cursor.records[offset:end],
        }
        if not page["done"]:
            page["nextRecordsUrl"] = f"/services/data/{version}/{cursor.endpoint}/{locator}-{end}"
        else:
            del self._cursors[locator]
        return page

    @staticmethod
    def schema_for_query(name: str) -> ObjectSchema:
        """The schema of a FROM clause's sObject (``INVALID_TYPE`` if unknown)."""
        for key, schema in SCHEMAS.items():
            if key.lower() == name.lower():
                return schema
        raise SalesforceError(
            400,
            "INVALID_TYPE",
            f"sObject type '{name}' is not supported. If you are attempting to use a custom "
            "object, be sure to append the '__c' after the entity name.",
        )

    def _getter(self, schema: ObjectSchema, path: str) -> tuple[FieldSpec, Callable[[Record], Any]]:
        parts = path.split(".")
        hops: list[str] = []  # reference field names to follow
        current = schema
        for rel in parts[:-1]:
            target = current.relationship(rel)
            if target is None:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{rel}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' "
                    "after the custom relationship name.",
                )
            hops.append(target[0])
            current = SCHEMAS[target[1]]
        spec = current.field(parts[-1])
        if spec is None:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{parts[-1]}' on entity '{current.name}'."
            )
        records = self._records

        def get(record: Record) -> Any:
            node: Record | None = record
            for hop in hops:
                ref = node.get(hop) if node is not None else None
                node = records.get(ref) if ref else None
            return None if node is None else node.get(spec.name)

        return spec, get

    def _project(
        self,
        schema: ObjectSchema,
        record: Record,
        paths: tuple[str, ...],
        getters: list[tuple[FieldSpec, Callable[[Record], Any]]],
        version: str,
    ) -> Record:
        out: Record = {"attributes": self._attributes(schema.name, record["Id"], version)}
        for path, (spec, get) in zip(paths, getters, strict=True):
            parts = path.split(".")
            if len(parts) == 1:
                out[spec.name] = _jsonable(get(record))
                continue
            # Parent fields nest under the relationship name, or null with no parent.
            node, current, target = out, schema, record
            for rel in parts[:-1]:
                ref_field, target_type = current.relationship(rel) or ("", "")
                rel_name = next(k for k in current.relationships if k.lower() == rel.lower())
                ref = target.get(ref_field) if target is not None else None
                parent = self._records.get(ref) if ref else None
                if parent is None:
                    node[rel_name] = None
                    break
                child = node.get(rel_name)
                if not isinstance(child, dict):
                    child = {"attributes": self._attributes(target_type, parent["Id"], version)}
                    node[rel_name] = child
                node, current, target = child, SCHEMAS[target_type], parent
            else:
                node[spec.name] = _jsonable(get(record))
        return out

    def _compile(self, schema: ObjectSchema, expr: Expr) -> Callable[[Record], bool]:
        if isinstance(expr, And):
            parts = [self._compile(schema, e) for e in expr.items]
            return lambda r: all(p(r) for p in parts)
        if isinstance(expr, Or):
            parts = [self._compile(schema, e) for e in expr.items]
            return lambda r: any(p(r) for p in parts)
        if isinstance(expr, Not):
            inner = self._compile(schema, expr.item)
            return lambda r: not inner(r)
        spec, get = self._getter(schema, expr.field)
        if isinstance(expr, Like):
            if spec.type not in TEXTUAL:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    f"invalid operator on {spec.type} field: {spec.name}",
                )
            matcher = like_matcher(expr.pattern)
            return lambda r: (v := get(r)) is not None and matcher(str(v))
        if isinstance(expr, InList):
            values = {comparable(spec, check_literal(spec, v)) for v in expr.values}
            if expr.negated:
                return lambda r: comparable(spec, get(r)) not in values
            return lambda r: comparable(spec, get(r)) in values
        value = comparable(spec, check_literal(spec, expr.value))
        op = expr.op
        if spec.type == BOOLEAN and op not in ("=", "!="):
            raise SalesforceError(
                400, "INVALID_FIELD", f"invalid operator on boolean field: {spec.name}"
            )
        return comparator(op, value, lambda r: comparable(spec, get(r)))
