"""The customer master: change detection, survivorship, change requests under four
eyes, stewardship, and staged propagation.

A sync of one customer reads its governed fields from every system that holds it,
compares each system's value with the one it held at the last sync, and lets
:func:`decide` say what happens. A change that carries a value runs in stages, in
``PROPAGATION_ORDER`` (ERP, billing, CRM, support), each stage a traced step
(``StepRunner``: retry, idempotency key, event, dead letter) under the change's
correlation ID; the stage of the system the value comes from re-reads it and checks
it is still the value detected (and approved). A failed stage halts the later ones;
``retry`` runs again from it.

Errors (``InterlockError`` subclasses, answered as problem details)::

    CustomerError
    ├── CustomerNotFound        no such customer or change (404)
    ├── ChangeNotActionable     the change is not in a state that allows it (409)
    └── SelfApprovalRefused     four eyes: one person may not approve twice (403)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from adapters.flows import StepOutcome, StepRunner
from collector import Bus, Principal
from collector.lineage import AsyncLineage
from tracing import (
    ConflictError,
    Event,
    InterlockError,
    Status,
    System,
    correlation_id_for,
    current_trace_context,
    new_event_id,
    start_step_span,
)

from . import _store as store
from ._ownership import (
    PROPAGATION_ORDER,
    CustomerField,
    OwnershipMatrix,
    Verdict,
    decide,
    fingerprint,
)
from ._systems import MAPPED_FIELDS, CustomerSystems, Xref

__all__ = [
    "STAGE_STEPS",
    "ChangeNotActionable",
    "CustomerError",
    "CustomerMaster",
    "CustomerNotFound",
    "SelfApprovalRefused",
]

Audit = Callable[..., Awaitable[None]]

#: Each system's propagation stage: (step, kind of its outcome event).
STAGE_STEPS: dict[str, tuple[str, str]] = {
    "erp": ("erp.party.update", "customer.erp.updated"),
    "billing": ("billing.customer.update", "customer.billing.updated"),
    "crm": ("crm.account.update", "customer.crm.updated"),
    "support": ("support.organization.update", "customer.support.updated"),
}
#: Approvals a change request needs, from different people.
APPROVALS_NEEDED = 2
_OPEN = ("pending", "propagating", "halted")


class CustomerError(InterlockError):
    """A customer-master action cannot be done."""


class CustomerNotFound(CustomerError):
    http_status = 404


class ChangeNotActionable(CustomerError):
    http_status = 409


class SelfApprovalRefused(CustomerError):
    """Four eyes: the same person may not give both approvals."""

    http_status = 403


def _shown(field: str, value: str | None, matrix: OwnershipMatrix) -> str | None:
    """A value as Interlock keeps and serves it: PII masked to its last two characters."""
    if value is None or not matrix.rule(field).pii:
        return value
    return "***" + value[-2:] if len(value) > 4 else "***"


class CustomerMaster:
    """The golden records and their changes, over the lineage's DuckDB file."""

    def __init__(
        self,
        lineage: AsyncLineage,
        bus: Bus,
        runner: StepRunner,
        systems: CustomerSystems,
        matrix: OwnershipMatrix,
        *,
        audit: Audit | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lineage = lineage
        self._bus = bus
        self._runner = runner
        self.systems = systems
        self.matrix = matrix
        self._audit = audit
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        await self._lineage.write(lambda conn: conn.execute(store.DDL))

    async def stop(self) -> None:
        return None

    def _lock(self, customer_id: str) -> asyncio.Lock:
        return self._locks.setdefault(customer_id, asyncio.Lock())

    # -- detection and survivorship ------------------------------------------------

    async def sync(self, customer_id: str) -> dict[str, Any]:
        """Read the customer from every system and act on what changed since the last
        sync; the golden record and the changes this sync opened or ran."""
        async with self._lock(customer_id):
            known = await self._lineage.read(lambda c: store.customer(c, customer_id))
            xref = await self.systems.locate(customer_id, _xref(customer_id, known))
            held = [s for s in PROPAGATION_ORDER if xref.holds(s)]
            if "crm" not in held and "erp" not in held:
                raise CustomerNotFound(f"no system holds customer {customer_id}")
            values = {s: await self.systems.read(s, xref) for s in held}
            base = await self._lineage.read(lambda c: store.baseline(c, customer_id))
            decided = await self._lineage.read(lambda c: store.decisions(c, customer_id))
            open_items, _ = await self._lineage.read(
                lambda c: store.changes(c, customer_id=customer_id, limit=1000)
            )
            busy = {i["field"] for i in open_items if i["state"] in _OPEN}
            opened: list[dict[str, Any]] = []
            for field in MAPPED_FIELDS:
                if field.value in busy:
                    continue
                rule = self.matrix.rule(field)
                current = {s: fingerprint(values[s][field]) for s in held if s in rule.systems}
                decision = decided.get(field.value)
                verdict = decide(
                    rule,
                    current,
                    base.get(field.value, {}),
                    steward=decision["fingerprint"] if decision else None,
                    steward_source=decision["source"] if decision else None,
                )
                if verdict.verdict is Verdict.UNCHANGED:
                    continue
                item = self._new_change(customer_id, field, verdict, values)
                opened.append(item)
            for item in opened:
                await self._lineage.write(partial(store.insert_change, item=item))
            rows = [(s, f.value, fingerprint(values[s][f])) for s in held for f in MAPPED_FIELDS]
            await self._lineage.write(lambda c: store.put_baseline(c, customer_id, rows))
            await self._save_record(customer_id, xref, values, decided)
        for item in opened:
            if item["kind"] == "propagation":
                await self._propagate(item["change_id"], reason="detected")
        return {
            "customer": await self.get(customer_id),
            "opened": [await self.change(i["change_id"]) for i in opened],
        }

    def _new_change(
        self,
        customer_id: str,
        field: CustomerField,
        verdict: Any,
        values: dict[str, dict[str, str | None]],
    ) -> dict[str, Any]:
        kind = {
            Verdict.PROPAGATE: "propagation",
            Verdict.CHANGE_REQUEST: "change_request",
            Verdict.CONFLICT: "stewardship",
            Verdict.STEWARD: "stewardship",
        }[verdict.verdict]
        source = verdict.source
        value = values[source][field] if source else None
        pii = self.matrix.rule(field).pii
        change_id = new_event_id()
        detail = {
            Verdict.PROPAGATE: f"{source}'s value wins: written to {', '.join(verdict.targets)}",
            Verdict.CHANGE_REQUEST: f"critical change at the owner ({source}): needs approval",
            Verdict.CONFLICT: f"changed in {', '.join(verdict.changed)} since the last sync",
            Verdict.STEWARD: f"{', '.join(verdict.targets)} edited a field {source} owns",
        }[verdict.verdict]
        now = self._clock()
        return {
            "change_id": change_id,
            "customer_id": customer_id,
            "field": field.value,
            "kind": kind,
            "state": "propagating" if kind == "propagation" else "pending",
            "source": source,
            "fingerprint": fingerprint(value) if source else None,
            "shown": _shown(field, value, self.matrix),
            "value": None if pii else value,
            "targets": list(verdict.targets),
            "values_seen": {s: _shown(field, v[field], self.matrix) for s, v in values.items()},
            "approvals": [],
            "correlation_id": correlation_id_for("interlock", "customer-change", change_id),
            "detail": detail,
            "created_at": now,
            "updated_at": now,
        }

    async def _save_record(
        self,
        customer_id: str,
        xref: Xref,
        values: dict[str, dict[str, str | None]],
        decided: dict[str, dict[str, Any]],
    ) -> None:
        record: dict[str, Any] = {}
        for field in MAPPED_FIELDS:
            rule = self.matrix.rule(field)
            decision = decided.get(field.value)
            source = decision["source"] if decision else rule.owner
            if source not in values:
                source = next((s for s in rule.systems if s in values), None)
            value = values[source][field] if source else None
            record[field.value] = {"value": _shown(field, value, self.matrix), "source": source}
        name_source = record[CustomerField.LEGAL_NAME.value]
        name = name_source["value"]
        at = self._clock()
        await self._lineage.write(
            lambda c: store.put_customer(c, customer_id, name, record, xref.as_dict(), at)
        )

    # -- reads ---------------------------------------------------------------------

    async def records(
        self, *, limit: int = 50, offset: int = 0, q: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        return await self._lineage.read(
            lambda c: store.customers(c, limit=limit, offset=offset, q=q)
        )

    async def get(self, customer_id: str) -> dict[str, Any]:
        found = await self._lineage.read(lambda c: store.customer(c, customer_id))
        if found is None:
            raise CustomerNotFound(f"no golden record for customer {customer_id}")
        items, _ = await self._lineage.read(
            lambda c: store.changes(c, customer_id=customer_id, limit=200)
        )
        found["changes"] = items
        found["open_items"] = [i for i in items if i["state"] in _OPEN]
        return found

    async def change(self, change_id: str) -> dict[str, Any]:
        found = await self._lineage.read(lambda c: store.change(c, change_id))
        if found is None:
            raise CustomerNotFound(f"no customer change {change_id}")
        found["stages"] = await self._lineage.read(lambda c: store.stages(c, change_id))
        return found

    async def changes(
        self, *, kinds: tuple[str, ...], state: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        return await self._lineage.read(
            lambda c: store.changes(c, kinds=kinds, state=state, limit=limit, offset=offset)
        )

    # -- control actions -----------------------------------------------------------

    async def approve(self, change_id: str, by: Principal) -> dict[str, Any]:
        """One approval of a pending change request; the second, from another person,
        starts its staged propagation."""
        item = await self.change(change_id)
        if item["kind"] != "change_request" or item["state"] != "pending":
            raise ChangeNotActionable(f"change {change_id} is {item['state']}, not pending")
        what = {"customer_id": item["customer_id"], "field": item["field"]}
        if any(a["by"] == by.name for a in item["approvals"]):
            await self._record(by, "customer.change.approve", change_id, None, what, "refused")
            raise SelfApprovalRefused(
                f"{by.name} already approved change {change_id}: a second person must"
            )
        approvals = [*item["approvals"], {"by": by.name, "at": self._clock().isoformat()}]
        done = len(approvals) >= APPROVALS_NEEDED
        state = "propagating" if done else "pending"
        await self._lineage.write(
            lambda c: store.update_change(
                c, change_id, approvals=approvals, state=state, updated_at=self._clock()
            )
        )
        await self._record(
            by, "customer.change.approve", change_id, None, what, "approved" if done else "noted"
        )
        if done:
            await self._propagate(change_id, reason="approved")
        return await self.change(change_id)

    async def reject(self, change_id: str, by: Principal, reason: str) -> dict[str, Any]:
        """Refuse a pending change request; the consumers keep their values and the
        owner's edit stays where it was made, visible here (audited)."""
        item = await self.change(change_id)
        if item["state"] != "pending":
            raise ChangeNotActionable(f"change {change_id} is {item['state']}, not pending")
        await self._lineage.write(
            lambda c: store.update_change(c, change_id, state="rejected", updated_at=self._clock())
        )
        what = {"customer_id": item["customer_id"], "field": item["field"]}
        await self._record(by, "customer.change.reject", change_id, reason, what, "rejected")
        return await self.change(change_id)

    async def resolve(
        self, change_id: str, by: Principal, *, winner: str, reason: str
    ) -> dict[str, Any]:
        """A steward's decision on a stewardship item: ``winner``'s value is the
        customer's, kept against later syncs, and propagated in stages now."""
        item = await self.change(change_id)
        if item["kind"] != "stewardship" or item["state"] != "pending":
            raise ChangeNotActionable(f"change {change_id} is not a pending stewardship item")
        field = CustomerField(item["field"])
        if winner not in self.matrix.rule(field).systems:
            raise ChangeNotActionable(f"{winner} does not hold {field.value}")
        known = await self._lineage.read(lambda c: store.customer(c, item["customer_id"]))
        xref = _xref(item["customer_id"], known)
        value = (await self.systems.read(winner, xref))[field]
        fp = fingerprint(value)
        pii = self.matrix.rule(field).pii
        targets = [s for s in self.matrix.rule(field).systems if s != winner and xref.holds(s)]
        now = self._clock()

        def decide_now(c: Any) -> None:
            store.put_decision(
                c,
                item["customer_id"],
                field.value,
                fingerprint=fp,
                value=None if pii else value,
                source=winner,
                by=by.name,
                at=now,
            )
            store.update_change(
                c,
                change_id,
                state="propagating",
                source=winner,
                fingerprint=fp,
                shown=_shown(field, value, self.matrix),
                value=None if pii else value,
                targets=targets,
                approvals=[{"by": by.name, "at": now.isoformat()}],
                updated_at=now,
            )

        await self._lineage.write(decide_now)  # fmt: skip
        what = {"customer_id": item["customer_id"], "field": field.value, "winner": winner}
        await self._record(by, "customer.stewardship.resolve", change_id, reason, what, "resolved")
        await self._propagate(change_id, reason="resolved")
        return await self.change(change_id)

    async def retry(self, change_id: str, by: Principal) -> dict[str, Any]:
        """Run a halted change again from the stage that failed (audited)."""
        item = await self.change(change_id)
        if item["state"] != "halted":
            raise ChangeNotActionable(f"change {change_id} is {item['state']}, not halted")
        failed = next((s for s in item["stages"] if s["status"] != "ok"), None)
        what = {"customer_id": item["customer_id"], "from_stage": failed and failed["system"]}
        await self._record(by, "customer.change.retry", change_id, None, what, "retried")
        await self._lineage.write(
            lambda c: store.update_change(
                c, change_id, state="propagating", updated_at=self._clock()
            )
        )
        await self._propagate(change_id, reason="retried")
        return await self.change(change_id)

    async def _record(
        self, by: Principal, action: str, subject: str, why: str | None,
        what: dict[str, Any], outcome: str,
    ) -> None:  # fmt: skip
        if self._audit is not None:
            await self._audit(by, action, subject, why=why, what=what, outcome=outcome)

    # -- staged propagation ----------------------------------------------------------

    def _plan(self, item: dict[str, Any]) -> list[str]:
        """The stages: the source (a check) and the targets, in propagation order."""
        wanted = {item["source"], *item["targets"]}
        return [s for s in PROPAGATION_ORDER if s in wanted]

    async def _propagate(self, change_id: str, *, reason: str) -> None:
        item = await self.change(change_id)
        plan = self._plan(item)
        done = {s["system"] for s in item["stages"] if s["status"] == "ok"}
        cause = await self._cause(item, reason)
        known = await self._lineage.read(lambda c: store.customer(c, item["customer_id"]))
        xref = _xref(item["customer_id"], known)
        field = CustomerField(item["field"])

        # Every stage not done yet is shown pending, so a halt shows where it stopped.
        def pending(c: Any) -> None:
            for p, s in enumerate(plan):
                if s not in done:
                    store.put_stage(c, change_id, p, s, "pending")

        await self._lineage.write(pending)
        for position, system in enumerate(plan):
            if system in done:
                continue
            outcome = await self._run_stage(cause, item, field, xref, system)
            now = self._clock()
            error = None
            if outcome.status is not Status.OK:
                error = outcome.error.message if outcome.error else "failed"

            def result(c: Any, p: int = position, s: str = system, o: Event = outcome,
                       t: datetime = now, e: str | None = error) -> None:  # fmt: skip
                store.put_stage(c, change_id, p, s, "failed" if e else "ok", event_id=o.event_id,
                                error=e, at=t)  # fmt: skip
                if e:
                    store.update_change(c, change_id, state="halted", updated_at=t)
                else:
                    store.put_baseline(
                        c, item["customer_id"], [(s, field.value, item["fingerprint"])]
                    )

            await self._lineage.write(result)
            if error is not None:
                return
        await self._lineage.write(
            lambda c: store.update_change(c, change_id, state="done", updated_at=self._clock())
        )

    async def _run_stage(
        self, cause: Event, item: dict[str, Any], field: CustomerField, xref: Xref, system: str
    ) -> Event:
        step, kind = STAGE_STEPS[system]

        async def action(_: str) -> StepOutcome:
            return await self._stage(item, field, xref, system)

        return await self._runner.run(
            cause,
            kind=kind,
            step=step,
            target=system,
            action=action,
            idempotency_key=f"{step}:{item['change_id']}",
        )

    async def _stage(
        self, item: dict[str, Any], field: CustomerField, xref: Xref, system: str
    ) -> StepOutcome:
        source = item["source"]
        # The value is re-read from its source at every stage: PII is never kept, and a
        # source that changed since the value was approved stops the change.
        value = (await self.systems.read(source, xref))[field]
        if fingerprint(value) != item["fingerprint"]:
            raise ConflictError(
                f"{source}'s {field.value} changed since this change was raised; "
                "the next sync raises it again",
                system=source,
            )
        if system != source:
            await self.systems.write(
                system, xref, {field.value: value}, key=f"{item['change_id']}:{system}"
            )
        return StepOutcome(
            entity_type="customer",
            entity_id=item["customer_id"],
            payload={
                "change_id": item["change_id"],
                "field": field.value,
                "value": item["shown"],
                "source": source,
                "checked" if system == source else "written": True,
            },
            customer_id=item["customer_id"],
        )

    async def _cause(self, item: dict[str, Any], reason: str) -> Event:
        """The event a propagation's stages follow: the change itself, under its
        correlation ID."""
        step = "customer.change." + reason
        with start_step_span(
            step, attributes={"interlock.correlation_id": item["correlation_id"]}
        ) as span:
            trace = current_trace_context(span)
        event = Event(
            correlation_id=item["correlation_id"],
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            trace_flags=trace.trace_flags,
            tracestate=trace.tracestate,
            idempotency_key=f"{step}:{item['change_id']}:{new_event_id()}",
            source=System.INTERLOCK,
            target=System.INTERLOCK,
            kind=step,
            step=step,
            entity_type="customer",
            entity_id=item["customer_id"],
            status=Status.OK,
            customer_id=item["customer_id"],
            payload={
                "change_id": item["change_id"],
                "field": item["field"],
                "kind": item["kind"],
                "source": item["source"],
                "value": item["shown"],
                "approved_by": [a["by"] for a in item["approvals"]],
            },
        )
        await self._bus.publish(event)
        return event


def _xref(customer_id: str, known: dict[str, Any] | None) -> Xref:
    ids = (known or {}).get("xref") or {}
    return Xref(
        customer_id,
        crm_account_id=ids.get("crm_account_id") or customer_id,
        erp_party_id=ids.get("erp_party_id"),
        billing_customer_id=ids.get("billing_customer_id"),
        support_organization_id=ids.get("support_organization_id"),
    )
