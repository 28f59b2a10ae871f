"""The Salesforce adapter: opportunity changes in, won deals out as canonical orders.

Everything vendor-shaped stays here: SOQL, ``attributes``, Salesforce's error
lists. What leaves is ``OpportunityChange``, ``SalesOrder`` and ``Customer``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pydantic

from tracing import (
    InterlockError,
    MappingError,
    RateLimited,
    RemoteError,
    ValidationError,
)

from .._canonical import BillingInterval, Customer, OrderLine, Product, ProductPrice, SalesOrder
from .._http import HttpAdapter, raise_for_response, tls_verify, translate_transport_error
from ._auth import JwtBearer, JwtBearerAuth, SessionAuth, SessionRejected, StaticToken

__all__ = [
    "ORDER_STATUSES",
    "OpportunityChange",
    "ProductRef",
    "SalesforceAdapter",
    "SalesforceValidationError",
    "TaskRef",
    "WonDeal",
]

SYSTEM = "crm"
_ID_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_INTERVALS = {
    "month": BillingInterval.MONTH,
    "monthly": BillingInterval.MONTH,
    "year": BillingInterval.YEAR,
    "yearly": BillingInterval.YEAR,
    "annual": BillingInterval.YEAR,
    "annually": BillingInterval.YEAR,
}


@dataclass(frozen=True, slots=True)
class ProductRef:
    """Where a catalog product landed in the org: its Product2 and standard PricebookEntry."""

    product_id: str
    pricebook_entry_id: str | None
    unit_price: Decimal | None
    active: bool


class SalesforceValidationError(ValidationError):
    """The org refused a write's fields (HTTP 400); ``error_code`` is Salesforce's
    ``errorCode`` (``INVALID_FIELD``, ``DUPLICATE_VALUE``, ...) and ``field`` the
    first field it names."""

    def __init__(self, message: str, *, field: str | None, system: str, error_code: str) -> None:
        super().__init__(message, field=field, system=system)
        self.error_code = error_code


@dataclass(frozen=True)
class TaskRef:
    """A Task the adapter created or found under its idempotency key."""

    task_id: str
    created: bool


#: The ERP sale states the CRM shows on the opportunity (``ERP_Order_Status__c``).
ORDER_STATUSES = frozenset({"confirmed", "processing", "done", "cancelled"})
#: The Task field that holds the writer's idempotency key (an external ID, unique).
TASK_KEY_FIELD = "Interlock_Key__c"
#: The opportunity field that shows the ERP's sale state.
ORDER_STATUS_FIELD = "ERP_Order_Status__c"
#: Custom fields on the opportunity and on its account that show an ERP credit hold.
CREDIT_HOLD_FIELD = "Credit_Hold__c"
CREDIT_HOLD_REASON_FIELD = "Credit_Hold_Reason__c"
CREDIT_EXPOSURE_FIELD = "Credit_Exposure__c"
CREDIT_LIMIT_FIELD = "Credit_Limit__c"


@dataclass(frozen=True)
class OpportunityChange:
    """One opportunity as the change feed saw it at ``modstamp``."""

    opportunity_id: str
    account_id: str | None
    #: The account's name (a company name, not personal data), read with the change so
    #: a transaction is named from its first event, even if its first step fails.
    account_name: str | None
    stage: str
    is_won: bool
    amount: Decimal | None
    currency: str | None
    modstamp: datetime


@dataclass(frozen=True)
class WonDeal:
    """A closed-won opportunity as the CRM holds it (what reconciliation compares)."""

    opportunity_id: str
    account_id: str | None
    account_name: str | None
    amount: Decimal | None
    currency: str | None
    close_date: date


def _soql_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_salesforce_datetime(value: str) -> datetime:
    """``2026-11-26T10:00:00.000+0000`` (Salesforce's form) as an aware datetime."""
    text = value.replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


def _check_id(value: str, field: str) -> str:
    # IDs go into SOQL text, so anything but a well-formed ID is refused here.
    if len(value) not in (15, 18) or not set(value) <= _ID_CHARS:
        raise ValidationError(
            f"{field} is not a Salesforce ID: {value!r}", field=field, system=SYSTEM
        )
    return value


def _soql_text(value: str) -> str:
    """A string literal's inside for SOQL: backslash and quote escaped."""
    if len(value) > 255:
        raise ValidationError("an idempotency key is at most 255 characters", field="key")
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _decimal(value: Any, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError(f"{field} is not a number: {value!r}", field=field, system=SYSTEM)
    return Decimal(str(value))


class SalesforceAdapter(HttpAdapter):
    """Async client of one Salesforce org's REST API.

    It authenticates either as a connected app (``jwt``: the OAuth 2.0 JWT bearer
    flow, the session renewed before the org's timeout and once on a 401) or with a
    static ``access_token``. ``verify`` is passed to httpx (a CA bundle path for the
    sandbox). A ``client`` given by the caller is used as is and not closed by
    :meth:`aclose`. Tokens and keys are sent, never logged or shown in ``repr``.

    Example::

        jwt = JwtBearer(login_url=url, consumer_key=key, username=user, private_key=pem)
        async with SalesforceAdapter(url, jwt=jwt) as sf:
            for change in await sf.opportunity_changes(since):
                order = await sf.load_order(change.opportunity_id)
    """

    #: The system this adapter speaks to (collector.SystemAdapter).
    system = SYSTEM

    def __init__(
        self,
        instance_url: str,
        access_token: str | None = None,
        *,
        jwt: JwtBearer | None = None,
        auth: SessionAuth | None = None,
        api_version: str = "v60.0",
        verify: bool | str = True,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = instance_url.rstrip("/")
        self._api = f"{self._base}/services/data/{api_version}"
        super().__init__(client, verify=tls_verify(verify), timeout=timeout)
        self._auth: SessionAuth
        if auth is not None:
            self._auth = auth
        elif jwt is not None:
            self._auth = JwtBearerAuth(self._client, jwt)
        elif access_token is not None:
            self._auth = StaticToken(access_token)
        else:
            raise ValueError("SalesforceAdapter needs jwt settings or an access_token")

    @property
    def auth(self) -> SessionAuth:
        """The session source (``JwtBearerAuth.requests`` counts token requests)."""
        return self._auth

    def _repr_args(self) -> str:
        return f"instance_url={self._base!r}"

    # -- transport ---------------------------------------------------------
    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One authenticated call; a 401 gets one new session, then ``SessionRejected``."""
        token = await self._auth.token()
        response = await self._call(method, url, token, params, body)
        if response.status_code != 401 or not self._auth.renewable:
            return response
        token = await self._auth.renew(token)
        response = await self._call(method, url, token, params, body)
        if response.status_code == 401:
            raise SessionRejected(
                f"HTTP 401 {_error_code(response) or ''} from {response.request.url.path} "
                "with a session issued just now",
                system=SYSTEM,
                status=401,
            )
        return response

    async def _call(
        self,
        method: str,
        url: str,
        token: str,
        params: dict[str, str] | None,
        body: dict[str, Any] | None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            return await self._client.request(
                method, url, params=params, headers=headers, json=body
            )
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, system=SYSTEM) from exc

    async def _get(self, url: str, params: dict[str, str] | None = None) -> Any:
        response = await self._send("GET", url, params=params)
        self._raise_for(response)
        return _decode(response)

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code == 400:
            first = _first_error(response)
            if first is not None:
                fields = first.get("fields") or []
                raise SalesforceValidationError(
                    f"HTTP 400 {first.get('errorCode')} from {response.request.method} "
                    f"{response.request.url.path}: {first.get('message')}",
                    field=str(fields[0]) if fields else None,
                    system=SYSTEM,
                    error_code=str(first.get("errorCode") or ""),
                )
        if response.status_code == 403 and _error_code(response) == "REQUEST_LIMIT_EXCEEDED":
            # Salesforce signals its API quota with 403, not 429, and no Retry-After.
            raise RateLimited(
                f"HTTP 403 REQUEST_LIMIT_EXCEEDED from {response.request.url.path}",
                system=SYSTEM,
                status=403,
            )
        raise_for_response(response, system=SYSTEM)

    async def _query(self, soql: str) -> list[dict[str, Any]]:
        """All records of a query, following ``nextRecordsUrl``."""
        page = await self._get(f"{self._api}/query/", {"q": soql})
        records: list[dict[str, Any]] = list(page["records"])
        while not page.get("done", True):
            page = await self._get(self._base + page["nextRecordsUrl"])
            records.extend(page["records"])
        return records

    # -- public ------------------------------------------------------------
    async def health(self) -> bool:
        """Whether the org answers an authenticated call (``limits/``)."""
        try:
            await self._get(f"{self._api}/limits/")
        except InterlockError:
            return False
        return True

    async def opportunity_changes(self, since: datetime) -> list[OpportunityChange]:
        """Opportunities whose ``SystemModstamp`` is after ``since``, oldest first.

        A touched record (same fields, new stamp) comes back again: the feed is
        at least once, and consumers dedupe by opportunity and content.
        """
        soql = (
            "SELECT Id, AccountId, Account.Name, StageName, IsWon, Amount, CurrencyIsoCode, "
            "SystemModstamp "
            f"FROM Opportunity WHERE SystemModstamp > {_soql_datetime(since)} "
            "ORDER BY SystemModstamp ASC, Id ASC"
        )
        return [
            OpportunityChange(
                opportunity_id=r["Id"],
                account_id=r.get("AccountId"),
                account_name=(r.get("Account") or {}).get("Name"),
                stage=r["StageName"],
                is_won=bool(r.get("IsWon")),
                amount=_decimal(r.get("Amount"), "Amount"),
                currency=r.get("CurrencyIsoCode"),
                modstamp=parse_salesforce_datetime(r["SystemModstamp"]),
            )
            for r in await self._query(soql)
        ]

    async def won_deals(self, start: date, end: date) -> list[WonDeal]:
        """Closed-won opportunities with a ``CloseDate`` in ``[start, end)``, paged through
        ``nextRecordsUrl``: what the CRM holds, whatever the change feed delivered."""
        soql = (
            "SELECT Id, AccountId, Account.Name, Amount, CurrencyIsoCode, CloseDate "
            "FROM Opportunity WHERE IsWon = true "
            f"AND CloseDate >= {start.isoformat()} AND CloseDate < {end.isoformat()} "
            "ORDER BY CloseDate ASC, Id ASC"
        )
        return [
            WonDeal(
                opportunity_id=r["Id"],
                account_id=r.get("AccountId"),
                account_name=(r.get("Account") or {}).get("Name"),
                amount=_decimal(r.get("Amount"), "Amount"),
                currency=r.get("CurrencyIsoCode"),
                close_date=date.fromisoformat(str(r["CloseDate"])[:10]),
            )
            for r in await self._query(soql)
        ]

    # -- writes ------------------------------------------------------------
    async def update_record(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """``PATCH sobjects/{sobject}/{id}``: an update is idempotent by nature (the same
        fields written twice leave the same record). A refused field raises
        ``SalesforceValidationError`` naming it."""
        if not sobject.isidentifier():
            raise ValueError(f"not an sObject name: {sobject!r}")
        _check_id(record_id, "record_id")
        response = await self._send(
            "PATCH", f"{self._api}/sobjects/{sobject}/{record_id}", body=fields
        )
        self._raise_for(response)

    async def sync_product(self, product: Product, price: ProductPrice | None) -> ProductRef:
        """The ERP's product as a Product2 (found by ``ProductCode``, the SKU) and its
        price in force today as the standard price book's entry.

        Idempotent: a repeat finds both records and writes the same values. A retired
        product, or one without a price in force, keeps its entry but inactive (an
        opportunity may still name it; Salesforce refuses to delete a used entry).
        """
        code = _soql_text(product.sku)
        rows = await self._query(
            f"SELECT Id FROM Product2 WHERE ProductCode = '{code}' ORDER BY CreatedDate LIMIT 1"
        )
        fields: dict[str, Any] = {
            "Name": product.name,
            "ProductCode": product.sku,
            "IsActive": product.active,
            "ExternalId": product.sku,
        }
        if rows:
            product_id = str(rows[0]["Id"])
            await self.update_record("Product2", product_id, fields)
        else:
            product_id = await self._create("Product2", fields)
        books = await self._query("SELECT Id FROM Pricebook2 WHERE IsStandard = true LIMIT 1")
        if not books:
            raise RemoteError("the org has no standard price book", system=SYSTEM)
        book_id = str(books[0]["Id"])
        currency = price.currency if price is not None else "USD"
        entries = await self._query(
            "SELECT Id, UnitPrice FROM PricebookEntry "
            f"WHERE Pricebook2Id = '{book_id}' AND Product2Id = '{product_id}' "
            f"AND CurrencyIsoCode = '{_soql_text(currency)}' LIMIT 1"
        )
        active = product.active and price is not None
        entry_id: str | None = str(entries[0]["Id"]) if entries else None
        if price is not None:
            # JSON numbers, as the credit fields are sent: Salesforce keeps currency fields
            # at two decimals, which a float carries exactly enough.
            values: dict[str, Any] = {"UnitPrice": float(price.unit_price), "IsActive": active}
            if entry_id is not None:
                await self.update_record("PricebookEntry", entry_id, values)
            else:
                entry_id = await self._create(
                    "PricebookEntry",
                    {
                        **values,
                        "Pricebook2Id": book_id,
                        "Product2Id": product_id,
                        "CurrencyIsoCode": currency,
                    },
                )
        elif entry_id is not None:
            await self.update_record("PricebookEntry", entry_id, {"IsActive": False})
        return ProductRef(
            product_id, entry_id, price.unit_price if price is not None else None, active
        )

    async def product_in_org(self, sku: str) -> ProductRef | None:
        """What the org holds for a SKU: its Product2 and standard entry (reconciliation)."""
        rows = await self._query(
            "SELECT Id, Product2Id, UnitPrice, IsActive, Product2.IsActive FROM PricebookEntry "
            f"WHERE ProductCode = '{_soql_text(sku)}' AND Pricebook2.IsStandard = true LIMIT 1"
        )
        if not rows:
            return None
        row = rows[0]
        return ProductRef(
            str(row["Product2Id"]),
            str(row["Id"]),
            _decimal(row.get("UnitPrice"), "UnitPrice"),
            bool(row.get("IsActive")) and bool((row.get("Product2") or {}).get("IsActive")),
        )

    async def _create(self, sobject: str, fields: dict[str, Any]) -> str:
        response = await self._send("POST", f"{self._api}/sobjects/{sobject}/", body=fields)
        self._raise_for(response)
        answer = _decode(response)
        if not isinstance(answer, dict) or not answer.get("success"):
            raise RemoteError(f"{sobject} create did not succeed: {answer!r}"[:300], system=SYSTEM)
        return str(answer["id"])

    async def publish_order_status(self, opportunity_id: str, status: str) -> None:
        """Show the ERP sale state on the opportunity (``ERP_Order_Status__c``)."""
        if status not in ORDER_STATUSES:
            raise ValidationError(
                f"ERP state {status!r} is not published to the CRM", field="erp_state"
            )
        await self.update_record("Opportunity", opportunity_id, {ORDER_STATUS_FIELD: status})

    async def show_credit_hold(
        self,
        opportunity_id: str,
        account_id: str,
        *,
        held: bool,
        reason: str | None = None,
        exposure: Decimal | None = None,
        limit: Decimal | None = None,
    ) -> None:
        """Show (``held``) or lift an ERP credit hold on the opportunity and its account
        (``Credit_Hold__c`` and the reason, exposure and limit beside it). A lift keeps
        the figures and clears the flag and the reason."""
        fields: dict[str, Any] = {
            CREDIT_HOLD_FIELD: held,
            CREDIT_HOLD_REASON_FIELD: reason if held else None,
        }
        if exposure is not None:
            fields[CREDIT_EXPOSURE_FIELD] = float(exposure)
        if held:
            fields[CREDIT_LIMIT_FIELD] = None if limit is None else float(limit)
        await self.update_record("Opportunity", opportunity_id, fields)
        await self.update_record("Account", account_id, fields)

    async def find_task(self, idempotency_key: str) -> str | None:
        """The Task written under ``idempotency_key``, if any."""
        rows = await self._query(
            f"SELECT Id FROM Task WHERE {TASK_KEY_FIELD} = '{_soql_text(idempotency_key)}' LIMIT 1"
        )
        return str(rows[0]["Id"]) if rows else None

    async def create_task(
        self,
        *,
        what_id: str,
        subject: str,
        idempotency_key: str,
        description: str | None = None,
        priority: str = "Normal",
        status: str = "Not Started",
    ) -> TaskRef:
        """``POST sobjects/Task`` once per ``idempotency_key``.

        The key is stored in the unique external-ID field ``Interlock_Key__c``: a
        repeat finds the Task by a query before inserting, and a concurrent twin that
        loses the insert race (``DUPLICATE_VALUE``) returns the winner's Task.
        """
        _check_id(what_id, "what_id")
        found = await self.find_task(idempotency_key)
        if found is not None:
            return TaskRef(found, created=False)
        body: dict[str, Any] = {
            "WhatId": what_id,
            "Subject": subject,
            "Priority": priority,
            "Status": status,
            TASK_KEY_FIELD: idempotency_key,
        }
        if description is not None:
            body["Description"] = description
        response = await self._send("POST", f"{self._api}/sobjects/Task/", body=body)
        try:
            self._raise_for(response)
        except SalesforceValidationError as exc:
            if exc.error_code != "DUPLICATE_VALUE":
                raise
            found = await self.find_task(idempotency_key)
            if found is None:
                raise
            return TaskRef(found, created=False)
        answer = _decode(response)
        if not isinstance(answer, dict) or not answer.get("success"):
            raise RemoteError(f"Task create did not succeed: {answer!r}"[:300], system=SYSTEM)
        return TaskRef(str(answer["id"]), created=True)

    async def get_account(self, account_id: str) -> dict[str, Any]:
        """The Account record as the org holds it (every field)."""
        _check_id(account_id, "account_id")
        found: dict[str, Any] = await self._get(f"{self._api}/sobjects/Account/{account_id}")
        return found

    async def account_changes(self, since: datetime) -> list[tuple[str, datetime]]:
        """Accounts modified at or after ``since`` (``SystemModstamp``), oldest first."""
        soql = (
            "SELECT Id, SystemModstamp FROM Account "
            f"WHERE SystemModstamp >= {_soql_datetime(since)} ORDER BY SystemModstamp"
        )
        return [
            (str(r["Id"]), parse_salesforce_datetime(str(r["SystemModstamp"])))
            for r in await self._query(soql)
        ]

    async def get_customer(self, account_id: str) -> Customer:
        """The account as a canonical customer; its ID is the customer ID."""
        _check_id(account_id, "account_id")
        account = await self._get(f"{self._api}/sobjects/Account/{account_id}")
        try:
            return Customer(
                customer_id=account["Id"],
                name=account.get("Name") or "",
                email=account.get("Contact_Email__c"),
                phone=account.get("Phone"),
                country=account.get("BillingCountry"),
                crm_account_id=account["Id"],
                parent_customer_id=account.get("ParentId"),
            )
        except pydantic.ValidationError as exc:
            raise ValidationError(
                f"account {account_id} breaks the Customer contract: {exc.errors()[0]['msg']}",
                field="Name",
                system=SYSTEM,
            ) from exc

    async def load_order(self, opportunity_id: str) -> SalesOrder:
        """The won deal as a canonical order, validated before anything is created.

        Raises ``ValidationError`` with ``field`` naming the Salesforce field
        (``Amount``, ``CurrencyIsoCode``, ``AccountId``, ``lines``) and
        ``MappingError`` with ``field="lines[i].sku"`` for a product without a
        product code.
        """
        _check_id(opportunity_id, "opportunity_id")
        opp = await self._get(f"{self._api}/sobjects/Opportunity/{opportunity_id}")
        opp_id = opp["Id"]
        amount = _decimal(opp.get("Amount"), "Amount")
        if amount is None:
            raise ValidationError(
                f"opportunity {opp_id} has no Amount", field="Amount", system=SYSTEM
            )
        currency = opp.get("CurrencyIsoCode")
        if not currency:
            raise ValidationError(
                f"opportunity {opp_id} has no CurrencyIsoCode",
                field="CurrencyIsoCode",
                system=SYSTEM,
            )
        account_id = opp.get("AccountId")
        if not account_id:
            raise ValidationError(
                f"opportunity {opp_id} has no AccountId", field="AccountId", system=SYSTEM
            )
        rows = await self._query(
            "SELECT Id, Product2Id, Product2.ProductCode, Product2.Name, Quantity, UnitPrice, "
            "TotalPrice, Description FROM OpportunityLineItem "
            f"WHERE OpportunityId = '{_check_id(opp_id, 'Id')}' ORDER BY CreatedDate ASC, Id ASC"
        )
        if not rows:
            raise ValidationError(
                f"opportunity {opp_id} has no line items", field="lines", system=SYSTEM
            )
        lines = [self._line(i, row) for i, row in enumerate(rows)]
        total = sum(
            (_decimal(r.get("TotalPrice"), "TotalPrice") or Decimal(0) for r in rows), Decimal(0)
        )
        if total.quantize(Decimal("0.01")) != amount.quantize(Decimal("0.01")):
            raise ValidationError(
                f"opportunity {opp_id}: Amount {amount} != sum of line items {total}",
                field="Amount",
                system=SYSTEM,
            )
        customer = await self.get_customer(account_id)
        interval_raw = opp.get("Billing_Interval__c")
        interval = BillingInterval.MONTH
        if interval_raw:
            found = _INTERVALS.get(str(interval_raw).strip().lower())
            if found is None:
                raise MappingError(
                    f"Billing_Interval__c {interval_raw!r} has no canonical interval",
                    field="Billing_Interval__c",
                    system=SYSTEM,
                )
            interval = found
        close = opp.get("CloseDate")
        try:
            return SalesOrder(
                order_ref=opp_id,
                customer=customer,
                currency=currency,
                lines=lines,
                billing_interval=interval,
                payment_terms=opp.get("Payment_Terms__c") or "NET30",
                close_date=date.fromisoformat(close) if close else None,
            )
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise ValidationError(
                f"opportunity {opp_id} breaks the SalesOrder contract: {first['msg']}",
                field=".".join(str(p) for p in first["loc"]),
                system=SYSTEM,
            ) from exc

    @staticmethod
    def _line(index: int, row: dict[str, Any]) -> OrderLine:
        product = row.get("Product2") or {}
        sku = product.get("ProductCode")
        if not sku:
            raise MappingError(
                f"line {index}: product {row.get('Product2Id')} has no ProductCode",
                field=f"lines[{index}].sku",
                system=SYSTEM,
            )
        quantity = _decimal(row.get("Quantity"), f"lines[{index}].quantity")
        unit_price = _decimal(row.get("UnitPrice"), f"lines[{index}].unit_price")
        if quantity is None or unit_price is None:
            raise ValidationError(
                f"line {index} has no quantity or unit price",
                field=f"lines[{index}].quantity"
                if quantity is None
                else f"lines[{index}].unit_price",
                system=SYSTEM,
            )
        try:
            return OrderLine(
                sku=sku,
                description=product.get("Name") or row.get("Description") or "",
                quantity=quantity,
                unit_price=unit_price,
            )
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise ValidationError(
                f"line {index}: {first['msg']}",
                field=f"lines[{index}].{first['loc'][0]}",
                system=SYSTEM,
            ) from exc


def _decode(response: httpx.Response) -> Any:
    try:
        # Decimals stay exact: money never passes through float.
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise RemoteError(f"non-JSON answer: {response.text[:200]}", system=SYSTEM) from exc


def _first_error(response: httpx.Response) -> dict[str, Any] | None:
    """The first entry of Salesforce's ``[{"message","errorCode","fields"}]`` error list."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0]
    return None


def _error_code(response: httpx.Response) -> str | None:
    first = _first_error(response)
    code = first.get("errorCode") if first else None
    return code if isinstance(code, str) else None
