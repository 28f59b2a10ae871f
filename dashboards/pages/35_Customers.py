"""Customers: the golden record of each customer (PII masked), its IDs in every system,
its open changes and its transactions; stewards approve critical changes here."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._format import format_money, format_time
from dashboards._views import call

TITLE = "Customers"
_FLASH = "cu_flash"
#: The systems' IDs in the cross-reference, in propagation order.
XREF = [
    ("ERP party", "erp_party_id"),
    ("billing customer", "billing_customer_id"),
    ("CRM account", "crm_account_id"),
    ("support organization", "support_organization_id"),
]


def record_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The golden record as a table: each field, its (masked) value and where it comes from."""
    return [
        {
            "field": field.replace("_", " "),
            "value": "" if shown.get("value") is None else str(shown["value"]),
            "from": shown.get("source") or "no system holds it",
        }
        for field, shown in record.items()
    ]


def xref_rows(xref: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"system": label, "id": str(xref.get(key) or "not linked")} for label, key in XREF]


def change_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "change": c["change_id"],
            "field": str(c["field"]).replace("_", " "),
            "kind": str(c["kind"]).replace("_", " "),
            "state": c["state"],
            "from": c.get("source") or "",
            "new value": c.get("shown") or "",
            "approvals": len(c.get("approvals") or []),
            "opened": format_time(c.get("created_at")),
            "detail": c.get("detail") or "",
        }
        for c in items
    ]


def transaction_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "transaction": f"./Transactions?cid={t['correlation_id']}",
            "state": t.get("state"),
            "amount": format_money(t.get("amount"), t.get("currency")) if t.get("amount") else "",
            "started": format_time(t.get("started_at")),
        }
        for t in items
    ]


def _flash(kind: str, text: str) -> None:
    st.session_state[_FLASH] = (kind, text)


def _act(verb: str, change_id: str) -> None:
    try:
        if verb == "approve":
            done = data.approve_change(change_id)
            _flash(
                "success",
                "Approved; propagating in stages."
                if done["state"] != "pending"
                else "Approved once; a second person must approve too.",
            )
        elif verb == "reject":
            reason = str(st.session_state.get("cu_reason") or "").strip()
            data.reject_change(change_id, reason=reason)
            _flash("success", "Rejected; nothing propagates.")
        else:
            data.retry_change(change_id)
            _flash("success", "Retried from the stage that failed.")
    except ControlApiError as exc:
        _flash("error", f"Refused ({exc.status}): {exc.detail}")


st.title("Customers")
st.caption(
    "One golden record per customer: who owns each field, the customer's ID in every system, "
    "the changes waiting for a steward and the customer's transactions."
)
flash = st.session_state.pop(_FLASH, None)
if flash is not None:
    (st.success if flash[0] == "success" else st.error)(flash[1])
me = call(data.whoami)
query = st.text_input("Search by name or customer ID", key="cu_q")
found = data.optional(data.customers, q=query.strip() or None)
if found is None:
    st.info("The customer master is not installed on this control API.")
    st.stop()
if not found["items"]:
    st.info("No customer yet." if not query else "No customer matches.")
    st.stop()
names = {c["customer_id"]: f"{c.get('name') or '(no name)'} · {c['customer_id']}" for c in
         found["items"]}  # fmt: skip
st.caption(f"{found['total']} customer(s)")
chosen = st.selectbox("Customer", list(names), format_func=lambda k: names[k], key="cu_pick")
one = call(data.customer, str(chosen))
left, right = st.columns(2)
left.subheader("Golden record")
left.dataframe(record_rows(one["record"]), hide_index=True)
right.subheader("IDs in every system")
right.dataframe(xref_rows(one["xref"]), hide_index=True)
st.caption(f"Last synced {format_time(one.get('synced_at'))}")
st.subheader("Open items")
open_items = one.get("open_items") or []
if open_items:
    st.dataframe(change_rows(open_items), hide_index=True)
else:
    st.success("Nothing waits for a steward.")
history = [c for c in one.get("changes") or [] if c not in open_items]
if history:
    with st.expander(f"Changes ({len(history)} settled)"):
        st.dataframe(change_rows(history), hide_index=True)
st.subheader("Transactions")
if one.get("transactions"):
    st.dataframe(
        transaction_rows(one["transactions"]),
        hide_index=True,
        column_config={"transaction": st.column_config.LinkColumn(display_text=r"cid=(.*)")},
    )
else:
    st.info("No transaction of this customer in the lineage.")
actionable = [c for c in open_items if c["kind"] == "change_request"]
if not actionable:
    st.stop()
role = me["role"]
if role not in ("operator", "approver", "admin"):
    st.info("Deciding on changes needs the approver role.")
    st.stop()
labels = {c["change_id"]: f"{c['field']} → {c.get('shown') or ''} ({c['state']})" for c in
          actionable}  # fmt: skip
pick = st.selectbox("Change", list(labels), format_func=lambda k: labels[k], key="cu_change")
item = next(c for c in actionable if c["change_id"] == pick)
if item["state"] == "halted":
    st.button("Retry from the failed stage", key="cu_retry", on_click=_act, args=("retry", pick))
elif item["state"] == "pending" and role in ("approver", "admin"):
    st.button("Approve", key="cu_approve", on_click=_act, args=("approve", pick))
    st.text_input("Reason", key="cu_reason", placeholder="why this change must not propagate")
    st.button("Reject", key="cu_reject", on_click=_act, args=("reject", pick))
elif item["state"] == "pending":
    st.info("Approving or rejecting a change needs the approver role (two different people).")
