"""The sObjects the sandbox knows: fields, types, key prefixes and relationships."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SCHEMAS", "FieldSpec", "ObjectSchema", "id18", "is_salesforce_id"]

# Field types, named as Salesforce's describe names them.
ID, STRING, CURRENCY, DOUBLE, BOOLEAN, DATETIME, DATE, REFERENCE, PICKLIST = (
    "id",
    "string",
    "currency",
    "double",
    "boolean",
    "datetime",
    "date",
    "reference",
    "picklist",
)
NUMERIC = frozenset({CURRENCY, DOUBLE})
TEXTUAL = frozenset({ID, STRING, REFERENCE, PICKLIST})


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool = False
    writable: bool = True
    references: str | None = None  # target sObject of a reference field


@dataclass(frozen=True)
class ObjectSchema:
    name: str
    key_prefix: str
    fields: dict[str, FieldSpec]
    # relationship name -> (reference field, target sObject)
    relationships: dict[str, tuple[str, str]] = field(default_factory=dict)

    def field(self, name: str) -> FieldSpec | None:
        """A field by name, case-insensitively (SOQL and the REST API ignore case)."""
        return self._lower.get(name.lower())

    def relationship(self, name: str) -> tuple[str, str] | None:
        for rel, target in self.relationships.items():
            if rel.lower() == name.lower():
                return target
        return None

    @property
    def _lower(self) -> dict[str, FieldSpec]:
        return {key.lower(): spec for key, spec in self.fields.items()}


def _system_fields() -> list[FieldSpec]:
    return [
        FieldSpec("Id", ID, writable=False),
        FieldSpec("IsDeleted", BOOLEAN, writable=False),
        FieldSpec("CreatedDate", DATETIME, writable=False),
        FieldSpec("LastModifiedDate", DATETIME, writable=False),
        FieldSpec("SystemModstamp", DATETIME, writable=False),
    ]


def _schema(
    name: str, prefix: str, specs: list[FieldSpec], relationships: dict[str, tuple[str, str]]
) -> ObjectSchema:
    all_specs = _system_fields() + specs
    return ObjectSchema(name, prefix, {s.name: s for s in all_specs}, relationships)


SCHEMAS: dict[str, ObjectSchema] = {
    schema.name: schema
    for schema in (
        _schema(
            "Account",
            "001",
            [
                FieldSpec("Name", STRING, required=True),
                FieldSpec("BillingCountry", STRING),
                FieldSpec("Phone", STRING),
                FieldSpec("Website", STRING),
                FieldSpec("Contact_Email__c", STRING),
                FieldSpec("ParentId", REFERENCE, references="Account"),
                # The legal entity's tax registration (a custom field, as orgs add it).
                FieldSpec("Tax_Id__c", STRING),
                # An ERP credit hold, written back by Interlock (custom fields).
                FieldSpec("Credit_Hold__c", BOOLEAN),
                FieldSpec("Credit_Hold_Reason__c", PICKLIST),
                FieldSpec("Credit_Exposure__c", CURRENCY),
                FieldSpec("Credit_Limit__c", CURRENCY),
            ],
            {"Parent": ("ParentId", "Account")},
        ),
        _schema(
            "Product2",
            "01t",
            [
                FieldSpec("Name", STRING, required=True),
                FieldSpec("ProductCode", STRING),
                FieldSpec("Description", STRING),
                FieldSpec("Family", PICKLIST),
                FieldSpec("IsActive", BOOLEAN),
                # Salesforce's own external-ID field on Product2 (API 48.0 and later).
                FieldSpec("ExternalId", STRING),
            ],
            {},
        ),
        # Every org has one standard price book (IsStandard, not writable); a product's
        # price in another book needs its standard price first.
        _schema(
            "Pricebook2",
            "01s",
            [
                FieldSpec("Name", STRING, required=True),
                FieldSpec("IsActive", BOOLEAN),
                FieldSpec("IsStandard", BOOLEAN, writable=False),
                FieldSpec("Description", STRING),
            ],
            {},
        ),
        _schema(
            "PricebookEntry",
            "01u",
            [
                FieldSpec("Pricebook2Id", REFERENCE, required=True, references="Pricebook2"),
                FieldSpec("Product2Id", REFERENCE, required=True, references="Product2"),
                FieldSpec("UnitPrice", CURRENCY, required=True),
                FieldSpec("IsActive", BOOLEAN),
                FieldSpec("UseStandardPrice", BOOLEAN),
                FieldSpec("CurrencyIsoCode", PICKLIST),
                # Derived from the product, read-only as in Salesforce.
                FieldSpec("ProductCode", STRING, writable=False),
                FieldSpec("Name", STRING, writable=False),
            ],
            {
                "Pricebook2": ("Pricebook2Id", "Pricebook2"),
                "Product2": ("Product2Id", "Product2"),
            },
        ),
        _schema(
            "Opportunity",
            "006",
            [
                FieldSpec("Name", STRING, required=True),
                FieldSpec("AccountId", REFERENCE, references="Account"),
                FieldSpec("StageName", PICKLIST, required=True),
                FieldSpec("Amount", CURRENCY),
                FieldSpec("CurrencyIsoCode", PICKLIST),
                FieldSpec("CloseDate", DATE, required=True),
                FieldSpec("IsClosed", BOOLEAN, writable=False),
                FieldSpec("IsWon", BOOLEAN, writable=False),
                FieldSpec("Billing_Interval__c", PICKLIST),
                FieldSpec("Payment_Terms__c", PICKLIST),
                # The ERP's sale state, written back by Interlock (a custom field).
                FieldSpec("ERP_Order_Status__c", PICKLIST),
                FieldSpec("Credit_Hold__c", BOOLEAN),
                FieldSpec("Credit_Hold_Reason__c", PICKLIST),
                FieldSpec("Credit_Exposure__c", CURRENCY),
                FieldSpec("Credit_Limit__c", CURRENCY),
            ],
            {"Account": ("AccountId", "Account")},
        ),
        _schema(
            "OpportunityLineItem",
            "00k",
            [
                FieldSpec("OpportunityId", REFERENCE, required=True, references="Opportunity"),
                FieldSpec("Product2Id", REFERENCE, required=True, references="Product2"),
                FieldSpec("Quantity", DOUBLE, required=True),
                FieldSpec("UnitPrice", CURRENCY),
                FieldSpec("TotalPrice", CURRENCY),
                FieldSpec("Description", STRING),
            ],
            {
                "Opportunity": ("OpportunityId", "Opportunity"),
                "Product2": ("Product2Id", "Product2"),
            },
        ),
        _schema(
            "Task",
            "00T",
            [
                FieldSpec("Subject", STRING, required=True),
                FieldSpec("Status", PICKLIST),
                FieldSpec("Priority", PICKLIST),
                FieldSpec("Description", STRING),
                FieldSpec("ActivityDate", DATE),
                # WhatId is polymorphic in Salesforce; the sandbox's Tasks hang off
                # opportunities (an account's Task names it in the description).
                FieldSpec("WhatId", REFERENCE, references="Opportunity"),
                # An external-ID custom field: the writer's idempotency key.
                FieldSpec("Interlock_Key__c", STRING),
            ],
            {"What": ("WhatId", "Opportunity")},
        ),
    )
}

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def id18(id15: str) -> str:
    """The 18-character, case-insensitive-safe form of a 15-character Salesforce ID.

    Each 5-character chunk contributes one suffix character whose bits mark the
    upper-case letters in that chunk, exactly as Salesforce computes it.
    """
    if len(id15) == 18:
        return id15
    suffix = ""
    for chunk in range(3):
        bits = 0
        for pos in range(5):
            ch = id15[chunk * 5 + pos]
            if "A" <= ch <= "Z":
                bits |= 1 << pos
        suffix += _ALPHABET[bits]
    return id15 + suffix


def is_salesforce_id(value: str) -> bool:
    """Whether ``value`` looks like a 15- or 18-character Salesforce ID."""
    return len(value) in (15, 18) and all(ch in _BASE62 for ch in value)


def base62(number: int, width: int) -> str:
    out = ""
    while number:
        number, rem = divmod(number, 62)
        out = _BASE62[rem] + out
    return out.rjust(width, "0")
