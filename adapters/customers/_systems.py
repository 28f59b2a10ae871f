"""Where each system keeps a customer's governed fields, read and written through the
system adapters.

- legal name: the party's ``name`` (ERP), the customer's ``name`` (billing), the
  Account's ``Name`` (CRM), the organization's ``name`` (support);
- tax ID: the party's first ``party.identifier``, billing ``metadata.tax_id``, the
  Account's ``Tax_Id__c``, the organization's ``organization_fields.tax_id``;
- parent account: a ``party.relation`` *Subsidiary of* the parent's party (Tryton's
  party_relationship shows its reverse, *Parent of*), billing
  ``metadata.interlock_parent_customer_id`` (the invoice account structure), the
  Account's ``ParentId``, the organization's ``organization_fields.parent_customer_id``.

A parent is named everywhere by its Interlock customer ID (the CRM account ID). The
other matrix fields (addresses, payment terms, credit limit, contacts) are governed by
the matrix but not yet read from the systems (docs/customer-master.md, *Not built yet*).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from adapters.sandbox._tryton_setup import SUBSIDIARY_OF
from tracing import ValidationError

from ._ownership import CustomerField

__all__ = ["MAPPED_FIELDS", "CustomerSystems", "Xref"]

#: The fields read and written in every system today.
MAPPED_FIELDS: tuple[CustomerField, ...] = (
    CustomerField.LEGAL_NAME,
    CustomerField.TAX_ID,
    CustomerField.PARENT_ACCOUNT,
)
_PARENT_META = "interlock_parent_customer_id"
_TAX_META = "tax_id"

Values = dict[str, str | None]


@dataclass(frozen=True, slots=True)
class Xref:
    """A customer's IDs in every system (``None``: that system does not hold it)."""

    customer_id: str
    crm_account_id: str | None = None
    erp_party_id: int | None = None
    billing_customer_id: str | None = None
    support_organization_id: str | None = None

    def holds(self, system: str) -> bool:
        return self.id_in(system) is not None

    def id_in(self, system: str) -> str | None:
        value = {
            "crm": self.crm_account_id,
            "erp": self.erp_party_id,
            "billing": self.billing_customer_id,
            "support": self.support_organization_id,
        }[system]
        return None if value is None else str(value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "crm_account_id": self.crm_account_id,
            "erp_party_id": self.erp_party_id,
            "billing_customer_id": self.billing_customer_id,
            "support_organization_id": self.support_organization_id,
        }


class _Rpc(Protocol):
    async def call(self, method: str, *params: Any) -> Any: ...


class _Erp(Protocol):
    @property
    def rpc(self) -> Any: ...
    async def parties_by_code(self, codes: Any) -> dict[str, list[int]]: ...


class _Billing(Protocol):
    async def find_customer(self, customer_id: str) -> str | None: ...
    async def customer_record(self, billing_customer_id: str) -> dict[str, Any]: ...
    async def update_customer(
        self, billing_customer_id: str, data: Any, *, idempotency_key: str
    ) -> dict[str, Any]: ...


class _Crm(Protocol):
    async def get_account(self, account_id: str) -> dict[str, Any]: ...
    async def update_record(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None: ...


class _Support(Protocol):
    async def find_organization(self, external_id: str) -> str | None: ...
    async def get_organization(self, organization_id: str) -> dict[str, Any]: ...
    async def update_organization(self, organization_id: str, fields: dict[str, Any]) -> None: ...


class CustomerSystems:
    """The four systems' customer records, field by field."""

    def __init__(self, *, erp: Any, billing: Any, crm: Any, support: Any) -> None:
        self.erp: _Erp = erp
        self.billing: _Billing = billing
        self.crm: _Crm = crm
        self.support: _Support = support

    async def locate(self, customer_id: str, known: Xref | None = None) -> Xref:
        """The customer's IDs, looked up where not already known."""
        xref = known or Xref(customer_id, crm_account_id=customer_id)
        if xref.erp_party_id is None:
            parties = await self.erp.parties_by_code([customer_id])
            if parties.get(customer_id):
                xref = replace(xref, erp_party_id=min(parties[customer_id]))
        if xref.billing_customer_id is None:
            xref = replace(xref, billing_customer_id=await self.billing.find_customer(customer_id))
        if xref.support_organization_id is None:
            found = await self.support.find_organization(customer_id)
            xref = replace(xref, support_organization_id=found)
        return xref

    # -- reads -------------------------------------------------------------------------

    async def read(self, system: str, xref: Xref) -> Values:
        """The governed fields as ``system`` holds them for the customer."""
        reader = {
            "erp": self._read_erp,
            "billing": self._read_billing,
            "crm": self._read_crm,
            "support": self._read_support,
        }[system]
        ident = xref.id_in(system)
        if ident is None:
            raise ValidationError(f"{system} holds no record of {xref.customer_id}")
        return await reader(ident)

    async def _read_erp(self, ident: str) -> Values:
        rpc: _Rpc = self.erp.rpc
        party_id = int(ident)
        rows = await rpc.call("model.party.party.read", [party_id], ["name", "identifiers"])
        if not rows:
            raise ValidationError(f"no ERP party {party_id}", field="erp_party_id", system="erp")
        tax: str | None = None
        if rows[0]["identifiers"]:
            ids = await rpc.call("model.party.identifier.read", rows[0]["identifiers"], ["code"])
            tax = ids[0]["code"] if ids else None
        rel = await rpc.call(
            "model.party.relation.all.search_read",
            [["from_", "=", party_id], ["type.name", "=", SUBSIDIARY_OF]],
            0,
            1,
            [["id", "ASC"]],
            ["to.code"],
        )
        parent = (rel[0].get("to.") or {}).get("code") if rel else None
        return {
            CustomerField.LEGAL_NAME: rows[0]["name"],
            CustomerField.TAX_ID: tax,
            CustomerField.PARENT_ACCOUNT: parent,
        }

    async def _read_billing(self, ident: str) -> Values:
        cus = await self.billing.customer_record(ident)
        meta = cus.get("metadata") or {}
        return {
            CustomerField.LEGAL_NAME: cus.get("name"),
            CustomerField.TAX_ID: meta.get(_TAX_META) or None,
            CustomerField.PARENT_ACCOUNT: meta.get(_PARENT_META) or None,
        }

    async def _read_crm(self, ident: str) -> Values:
        account = await self.crm.get_account(ident)
        return {
            CustomerField.LEGAL_NAME: account.get("Name"),
            CustomerField.TAX_ID: account.get("Tax_Id__c"),
            CustomerField.PARENT_ACCOUNT: account.get("ParentId"),
        }

    async def _read_support(self, ident: str) -> Values:
        org = await self.support.get_organization(ident)
        fields = org.get("organization_fields") or {}
        return {
            CustomerField.LEGAL_NAME: org.get("name"),
            CustomerField.TAX_ID: fields.get("tax_id") or None,
            CustomerField.PARENT_ACCOUNT: fields.get("parent_customer_id") or None,
        }

    # -- writes ------------------------------------------------------------------------

    async def write(self, system: str, xref: Xref, values: Values, *, key: str) -> None:
        """Write ``values`` (field → value) into ``system``'s record; idempotent (the
        same values written twice leave the same record)."""
        ident = xref.id_in(system)
        if ident is None:
            raise ValidationError(f"{system} holds no record of {xref.customer_id}")
        if system == "erp":
            await self._write_erp(int(ident), values)
        elif system == "billing":
            data: dict[str, Any] = {}
            meta: dict[str, str] = {}
            for name, value in values.items():
                if name == CustomerField.LEGAL_NAME:
                    data["name"] = value
                elif name == CustomerField.TAX_ID:
                    meta[_TAX_META] = value or ""
                elif name == CustomerField.PARENT_ACCOUNT:
                    meta[_PARENT_META] = value or ""
            if meta:
                data["metadata"] = meta
            await self.billing.update_customer(ident, data, idempotency_key=key)
        elif system == "crm":
            names = {
                CustomerField.LEGAL_NAME: "Name",
                CustomerField.TAX_ID: "Tax_Id__c",
                CustomerField.PARENT_ACCOUNT: "ParentId",
            }
            await self.crm.update_record(
                "Account", ident, {names[CustomerField(k)]: v for k, v in values.items()}
            )
        else:
            body: dict[str, Any] = {}
            org_fields: dict[str, Any] = {}
            for name, value in values.items():
                if name == CustomerField.LEGAL_NAME:
                    body["name"] = value
                elif name == CustomerField.TAX_ID:
                    org_fields["tax_id"] = value
                elif name == CustomerField.PARENT_ACCOUNT:
                    org_fields["parent_customer_id"] = value
            if org_fields:
                body["organization_fields"] = org_fields
            await self.support.update_organization(ident, body)

    async def _write_erp(self, party_id: int, values: Values) -> None:
        rpc: _Rpc = self.erp.rpc
        for name, value in values.items():
            if name == CustomerField.LEGAL_NAME:
                await rpc.call("model.party.party.write", [party_id], {"name": value})
            elif name == CustomerField.TAX_ID:
                (row,) = await rpc.call("model.party.party.read", [party_id], ["identifiers"])
                if row["identifiers"] and value:
                    await rpc.call(
                        "model.party.identifier.write", row["identifiers"][:1], {"code": value}
                    )
                elif row["identifiers"]:
                    await rpc.call("model.party.identifier.delete", row["identifiers"][:1])
                elif value:
                    await rpc.call(
                        "model.party.identifier.create", [{"party": party_id, "code": value}]
                    )
            elif name == CustomerField.PARENT_ACCOUNT:
                await self._reparent_erp(rpc, party_id, value)

    async def _reparent_erp(self, rpc: _Rpc, party_id: int, parent: str | None) -> None:
        """One *Subsidiary of* relation to the parent's party (its reverse, *Parent of*,
        is Tryton's own), replacing any earlier one."""
        types = await rpc.call(
            "model.party.relation.type.search", [["name", "=", SUBSIDIARY_OF]], 0, 1, None
        )
        if not types:
            raise ValidationError(
                f"the ERP has no party relation type {SUBSIDIARY_OF!r} (party_relationship)",
                field="parent_account",
                system="erp",
            )
        old = await rpc.call(
            "model.party.relation.all.search",
            [["from_", "=", party_id], ["type", "=", types[0]]],
            0,
            None,
            None,
        )
        target: int | None = None
        if parent:
            parties = await self.erp.parties_by_code([parent])
            if not parties.get(parent):
                raise ValidationError(
                    f"the parent account {parent} has no ERP party yet",
                    field="parent_account",
                    system="erp",
                )
            target = min(parties[parent])
        if old:
            await rpc.call("model.party.relation.all.delete", old)
        if target is not None:
            await rpc.call(
                "model.party.relation.all.create",
                [{"from_": party_id, "to": target, "type": types[0]}],
            )
