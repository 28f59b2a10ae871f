"""The replay service: dry run, request, four-eyes approval, paced re-delivery, audit.

A replay re-publishes the *input* event of each dead-lettered step (its
``causation_id``) through the bus with a new event ID, the original idempotency
key, status ``replayed``, ``replay_of`` (the dead letter) and ``replay_id``. The
flow that handles it emits the step's outcome with the replayed event as its
cause; the service listens on the bus for that outcome to settle each item:
``ok``/``duplicate`` resolve the dead letter, ``dead_lettered``/``failed`` put it
back to open, no answer within ``outcome_timeout`` counts as a timeout (open).

Re-delivery is paced per target system: at most ``concurrency`` items in flight
and ``rate_per_second`` publishes per target, across all replays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
from pydantic import BaseModel

from collector import Bus, Principal, Role
from collector.lineage import (
    DeadLetterStateError,
    dead_letters_page,
    move_dead_letters,
    transition,
)
from tracing import Event, InterlockError, ValidationError, new_event_id

from ._access import LineageAccess, to_json
from ._audit import (
    AuditEntry,
    AuditHead,
    AuditVerdict,
    MemoryAuditHead,
    append_entry,
    read_entries,
    verify_chain,
)
from ._corrections import apply_corrections
from ._delivery import ItemResult, Live, Redelivery
from ._errors import ApprovalRefused, NotFound, StateConflict
from ._execution import claim_replay, finish_replay
from ._models import (
    Corrections,
    DeadLetterState,
    PlanItem,
    ReplayPlan,
    ReplayState,
    Selection,
    is_money_step,
)
from ._queries import (
    allowed_states,
    apply_ddl,
    dead_letter_groups,
    get_dead_letter,
    insert_items,
    json_value,
    list_replays,
    load_events,
    read_replay,
    select_dead_letters,
    selected_by,
)

__all__ = ["ReplayService", "TargetProbe"]

log = logging.getLogger(__name__)

#: Given a dead-lettered event: True if the target already holds its effect,
#: False if not, None if that cannot be told.
TargetProbe = Callable[[Event], Awaitable[bool | None]]

_SYSTEM = Principal("interlock", Role.ADMIN)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ReplayService:
    """Dead-letter actions and replays over the lineage, re-delivering through ``bus``.

    >>> service = ReplayService(lineage, bus, probe=probe, rate_per_second=10)  # doctest: +SKIP
    >>> await service.start()  # applies the DDL, subscribes to outcomes   # doctest: +SKIP

    ``sla_rule_steps`` maps an SLA rule ID to the steps it measures (for
    selections by rule; read at each selection, so it may be filled later);
    ``money_steps`` are the flows' steps whose redo moves money (four eyes);
    ``payload_models`` maps each payload key the flows declare to the model a
    corrected payload's value must validate as (``Host.payload_models``; read at
    each correction, so a flow installed later counts; a key no flow declares is
    carried unchecked); ``audit_head`` keeps the audit chain's head outside the
    table (default: in memory); ``auto_execute`` runs a replay as soon as it is
    approved (or needs no approval); ``known_skus`` (the product catalogue) lets
    corrections be checked against it; ``bus_group`` names its subscription to
    step outcomes.
    """

    def __init__(
        self,
        lineage: LineageAccess,
        bus: Bus,
        *,
        probe: TargetProbe | None,
        rate_per_second: float = 20.0,
        concurrency: int = 4,
        clock: Callable[[], datetime] = _utcnow,
        burst: int = 1,
        outcome_timeout: float = 30.0,
        audit_head: AuditHead | None = None,
        sla_rule_steps: Mapping[str, Collection[str]] | None = None,
        money_steps: Collection[str] = (),
        payload_models: Mapping[str, type[BaseModel]] | None = None,
        auto_execute: bool = True,
        known_skus: Collection[str] | None = None,
        bus_group: str = "replay",
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if outcome_timeout <= 0:
            raise ValueError("outcome_timeout must be positive")
        self._lineage = lineage
        self._bus = bus
        self._probe = probe
        self.rate_per_second = rate_per_second
        self.concurrency = concurrency
        self._burst = burst
        self._clock = clock
        self._outcome_timeout = outcome_timeout
        self._head: AuditHead = audit_head or MemoryAuditHead()
        # Kept by reference: the SLA plug-in fills the host's map after replay installs.
        self._rule_steps: Mapping[str, Collection[str]] = (
            sla_rule_steps if sla_rule_steps is not None else {}
        )
        self._money_steps = money_steps  # by reference, like the rule steps
        self._payload_models: Mapping[str, type[BaseModel]] = (
            payload_models if payload_models is not None else {}
        )  # by reference too
        self._auto_execute = auto_execute
        self._known_skus = frozenset(known_skus) if known_skus is not None else None
        self._bus_group = bus_group
        self._delivery = Redelivery(
            bus,
            rate_per_second=rate_per_second,
            concurrency=concurrency,
            burst=burst,
            outcome_timeout=outcome_timeout,
            clock=clock,
            payload_models=self._payload_models,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, Live] = {}
        self._subscribed = False
        self._running = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Apply the DDL, subscribe to outcomes, and settle replays a restart cut off.

        Safe twice. Call it before ``bus.start()`` when the bus needs its
        subscriptions up front (Kafka).
        """
        if self._running:
            return
        await self._lineage.write(apply_ddl)
        if not self._subscribed:
            self._bus.subscribe(self._bus_group, self._delivery.on_event)
            self._subscribed = True
        self._running = True
        await self._recover()

    async def stop(self) -> None:
        """Cancel running replays (their dead letters stay replaying until restart); safe twice."""
        self._running = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._delivery.cancel_all()

    async def _recover(self) -> None:
        def work(conn: duckdb.DuckDBPyConnection) -> list[str]:
            now = self._clock()
            cut = conn.execute(
                "UPDATE replays SET state = ?, finished_at = ?, decision_note = "
                "coalesce(decision_note, 'interrupted by a restart') WHERE state = ? "
                "RETURNING replay_id",
                [ReplayState.FAILED.value, now, ReplayState.RUNNING.value],
            ).fetchall()
            for (replay_id,) in cut:
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT dead_letter_id FROM replay_items WHERE replay_id = ? "
                        "AND action = 'deliver'",
                        [replay_id],
                    ).fetchall()
                ]
                move_dead_letters(
                    conn,
                    ids,
                    DeadLetterState.OPEN,
                    by="interlock",
                    at=now,
                    note=f"replay {replay_id} was interrupted by a restart",
                    from_states=(DeadLetterState.REPLAYING,),
                )
            approved = conn.execute(
                "SELECT replay_id FROM replays WHERE state = ?", [ReplayState.APPROVED.value]
            ).fetchall()
            return [str(r[0]) for r in approved]

        for replay_id in await self._lineage.write(work):
            self._schedule(replay_id)

    def _schedule(self, replay_id: str) -> None:
        if not self._auto_execute or not self._running or replay_id in self._tasks:
            return
        task = asyncio.create_task(self._run(replay_id), name=f"replay:{replay_id}")
        self._tasks[replay_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(replay_id, None))

    async def _run(self, replay_id: str) -> None:
        try:
            await self.execute(replay_id)
        except asyncio.CancelledError:
            raise
        # An owned background task has no caller to raise to: record it loudly.
        except Exception:
            log.exception("replay %s failed to run", replay_id)

    async def wait(self, replay_id: str) -> dict[str, Any]:
        """Wait for a scheduled replay to finish (bound it with ``asyncio.timeout``);
        its progress."""
        task = self._tasks.get(replay_id)
        if task is not None:
            await asyncio.shield(task)
        return await self.progress(replay_id)

    # ---------------------------------------------------------------- audit

    async def _write_audited(
        self,
        fn: Callable[[duckdb.DuckDBPyConnection], tuple[Any, dict[str, Any]]],
    ) -> Any:
        """Run ``fn`` (returning its result and the audit fields) and append the entry
        in the same transaction, then move the head kept outside the table."""

        def work(conn: duckdb.DuckDBPyConnection) -> tuple[Any, AuditEntry]:
            result, audit = fn(conn)
            entry = append_entry(conn, at=self._clock(), **audit)
            return result, entry

        result, entry = await self._lineage.write(work)
        self._head.store(entry.seq, entry.hash)
        return result

    async def record(
        self,
        principal: Principal,
        action: str,
        subject: str | None,
        *,
        why: str | None,
        what: Mapping[str, Any],
        outcome: str,
    ) -> None:
        """Append one entry for a control action done elsewhere (an alert acknowledged)."""
        fields = self._audit_fields(principal, action, subject, why, dict(what), outcome)
        await self._write_audited(lambda conn: (None, fields))

    async def audit(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        action: str | None = None,
        subject: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Audit entries, newest first, and the total."""
        entries, total = await self._lineage.read(
            lambda conn: read_entries(
                conn, limit=limit, offset=offset, action=action, subject=subject
            )
        )
        return [entry.to_dict() for entry in entries], total

    async def verify_audit(self) -> AuditVerdict:
        """Check every hash of the chain and the head kept outside the table."""
        head = self._head.load()
        return await self._lineage.read(lambda conn: verify_chain(conn, head))

    # ---------------------------------------------------------------- dead letters

    def _steps_for(self, selection: Selection) -> frozenset[str] | None:
        if selection.sla_rule is None:
            return None
        try:
            return frozenset(self._rule_steps[selection.sla_rule])
        except KeyError:
            raise ValidationError(
                f"no SLA rule {selection.sla_rule!r} is known to replay", field="sla_rule"
            ) from None

    async def groups(self, selection: Selection) -> list[dict[str, Any]]:
        """Dead letters grouped by reason and step, largest group first."""
        steps = self._steps_for(selection)
        return await self._lineage.read(lambda conn: dead_letter_groups(conn, selection, steps))

    async def dead_letters(
        self, selection: Selection, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of dead letters matching ``selection`` and the total."""
        selected = selected_by(selection, self._steps_for(selection))
        page = await self._lineage.read(
            lambda conn: dead_letters_page(conn, selected, limit=limit, offset=offset)
        )
        return page.items, page.total

    async def dead_letter(self, event_id: str) -> dict[str, Any]:
        """One dead letter with its dead-lettered event and input event (masked)."""
        found = await self._lineage.read(lambda conn: get_dead_letter(conn, event_id))
        if found is None:
            raise NotFound(f"no dead letter {event_id}")
        return found

    async def ignore(self, event_id: str, principal: Principal, *, reason: str) -> dict[str, Any]:
        """Close an open dead letter without redoing it; the reason is required."""
        return await self._close(event_id, principal, DeadLetterState.IGNORED, reason)

    async def resolve(self, event_id: str, principal: Principal, *, note: str) -> dict[str, Any]:
        """Mark an open dead letter resolved by hand (fixed outside Interlock)."""
        return await self._close(event_id, principal, DeadLetterState.RESOLVED, note)

    async def _close(
        self, event_id: str, principal: Principal, state: DeadLetterState, why: str
    ) -> dict[str, Any]:
        _require(principal, Role.OPERATOR)
        if not why.strip():
            raise ValidationError(f"a reason is required to mark it {state.value}", field="reason")
        action = "dead_letter.ignore" if state is DeadLetterState.IGNORED else "dead_letter.resolve"

        def fn(conn: duckdb.DuckDBPyConnection) -> tuple[str | None, dict[str, Any]]:
            row = conn.execute(
                "SELECT state, step, amount, currency FROM dead_letters WHERE event_id = ?",
                [event_id],
            ).fetchone()
            if row is None:
                return "missing", self._audit_fields(
                    principal, action, event_id, why, {}, "refused: no such dead letter"
                )
            what = {"step": row[1], "amount": row[2], "currency": row[3], "from": row[0]}
            try:
                transition(
                    conn,
                    event_id,
                    state,
                    by=principal.name,
                    at=self._clock(),
                    note=why,
                    from_states=(DeadLetterState.OPEN,),
                )
            except DeadLetterStateError:
                refusal = f"refused: it is {row[0]}"
                return row[0], self._audit_fields(principal, action, event_id, why, what, refusal)
            return None, self._audit_fields(principal, action, event_id, why, what, state.value)

        refused = await self._write_audited(fn)
        if refused == "missing":
            raise NotFound(f"no dead letter {event_id}")
        if refused is not None:
            raise StateConflict(f"dead letter {event_id} is {refused}; only an open one can be")
        return await self.dead_letter(event_id)

    @staticmethod
    def _audit_fields(
        principal: Principal,
        action: str,
        subject: str | None,
        why: str | None,
        what: dict[str, Any],
        outcome: str,
    ) -> dict[str, Any]:
        return {
            "actor": principal.name,
            "role": "system" if principal is _SYSTEM else principal.role.name.lower(),
            "action": action,
            "subject": subject,
            "why": why,
            "what": what,
            "outcome": outcome,
        }

    # ---------------------------------------------------------------- dry run

    async def _probe_one(self, event: Event) -> bool | None:
        if self._probe is None:
            return None
        try:
            return await self._probe(event)
        except InterlockError as exc:
            # The target cannot answer (it may be the very outage): unknown, not fatal.
            log.warning("target probe failed for %s: %s", event.event_id, exc.message)
            return None

    async def dry_run(
        self, selection: Selection, *, corrections: Corrections | None = None
    ) -> ReplayPlan:
        """What a replay would re-deliver, to which system, under which key; what it skips."""
        if not selection.has_criteria():
            raise ValidationError("a replay needs a selection; refusing to replay everything")
        corrections = corrections or Corrections()
        steps = self._steps_for(selection)

        def load(
            conn: duckdb.DuckDBPyConnection,
        ) -> tuple[list[dict[str, Any]], dict[str, Event]]:
            letters = select_dead_letters(conn, selection, steps)
            events = load_events(conn, [letter["event_id"] for letter in letters])
            inputs = load_events(conn, [e.causation_id or "" for e in events.values()])
            return letters, {**events, **inputs}

        letters, events = await self._lineage.read(load)
        if corrections and len(letters) > 1:
            raise ValidationError(
                "corrections apply to one dead letter at a time; select it by event_id",
                field="corrections",
            )
        semaphore = asyncio.Semaphore(self.concurrency)
        allowed = allowed_states(selection)

        async def plan(letter: dict[str, Any]) -> PlanItem:
            event = events.get(letter["event_id"])
            source = events.get(event.causation_id or "") if event else None
            money = is_money_step(letter["step"], letter["kind"], self._money_steps)
            base = {
                "dead_letter_id": letter["event_id"],
                "correlation_id": letter["correlation_id"],
                "step": letter["step"],
                "kind": letter["kind"],
                "target": letter["target"],
                "reason": letter["reason"],
                "state": letter["state"],
                "amount": letter["amount"],
                "currency": letter["currency"],
                "input_event_id": source.event_id if source else None,
                "input_kind": source.kind if source else None,
                "idempotency_key": source.idempotency_key if source else None,
                "money": money,
            }
            if letter["state"] not in allowed:
                return PlanItem(
                    **base, action="skip", skip_reason=f"dead letter is {letter['state']}"
                )
            if event is None or source is None:
                return PlanItem(**base, action="skip", skip_reason="input event not in the lineage")
            diff: list[dict[str, Any]] = []
            if corrections:
                _, diff = apply_corrections(
                    source.payload,
                    corrections,
                    payload_models=self._payload_models,
                    known_skus=self._known_skus,
                )
            async with semaphore:
                holds = await self._probe_one(event)
            if holds:
                return PlanItem(
                    **base,
                    action="skip",
                    skip_reason="target already holds the effect",
                    target_holds=True,
                    diff=diff,
                )
            return PlanItem(**base, action="deliver", target_holds=holds, diff=diff)

        items = list(await asyncio.gather(*(plan(letter) for letter in letters)))
        value: dict[str, Decimal] = {}
        targets: dict[str, int] = {}
        for item in items:
            if item.action == "deliver":
                targets[item.target or "unknown"] = targets.get(item.target or "unknown", 0) + 1
                if item.amount is not None and item.currency:
                    value[item.currency] = value.get(item.currency, Decimal(0)) + item.amount
        to_deliver = sum(1 for item in items if item.action == "deliver")
        return ReplayPlan(
            selection=selection.describe(),
            items=items,
            total=len(items),
            to_deliver=to_deliver,
            skipped=len(items) - to_deliver,
            needs_approval=any(item.money and item.action == "deliver" for item in items),
            value_by_currency=value,
            targets=targets,
        )

    # ---------------------------------------------------------------- request and decide

    async def request(
        self,
        selection: Selection,
        principal: Principal,
        *,
        reason: str,
        corrections: Corrections | None = None,
    ) -> dict[str, Any]:
        """Record a replay from a fresh dry run. It runs at once unless it moves money,
        in which case it waits for a second person with the approver role."""
        _require(principal, Role.OPERATOR)
        if not reason.strip():
            raise ValidationError("a replay needs a reason", field="reason")
        corrections = corrections or Corrections()
        plan = await self.dry_run(selection, corrections=corrections)
        if plan.total == 0:
            raise ValidationError("the selection matches no replayable dead letters")
        replay_id = new_event_id()
        state = ReplayState.PENDING_APPROVAL if plan.needs_approval else ReplayState.APPROVED
        now = self._clock()

        def fn(conn: duckdb.DuckDBPyConnection) -> tuple[None, dict[str, Any]]:
            conn.execute(
                "INSERT INTO replays (replay_id, state, requested_by, requested_at, reason, "
                "selection, corrections, needs_approval, total, to_deliver, skipped, value) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    replay_id,
                    state.value,
                    principal.name,
                    now,
                    reason,
                    to_json(plan.selection),
                    to_json(corrections.model_dump(mode="json")) if corrections else None,
                    plan.needs_approval,
                    plan.total,
                    plan.to_deliver,
                    plan.skipped,
                    to_json(plan.value_by_currency),
                ],
            )
            insert_items(conn, replay_id, plan.items, now)
            move_dead_letters(
                conn,
                [i.dead_letter_id for i in plan.items if i.action == "deliver"],
                DeadLetterState.REPLAY_REQUESTED,
                by=principal.name,
                at=now,
                note=f"replay {replay_id} requested: {reason}",
                from_states=(DeadLetterState.OPEN,),
            )
            what = {
                "selection": plan.selection,
                "total": plan.total,
                "to_deliver": plan.to_deliver,
                "skipped": plan.skipped,
                "targets": plan.targets,
                "value_by_currency": plan.value_by_currency,
                "needs_approval": plan.needs_approval,
                "corrections": corrections.model_dump(mode="json") if corrections else None,
                "diff": [d for item in plan.items for d in item.diff],
            }
            return None, self._audit_fields(
                principal, "replay.request", replay_id, reason, what, state.value
            )

        await self._write_audited(fn)
        if state is ReplayState.APPROVED:
            self._schedule(replay_id)
        return await self.progress(replay_id, items=False)

    async def approve(
        self, replay_id: str, principal: Principal, *, note: str | None = None
    ) -> dict[str, Any]:
        """Four eyes: a second person with the approver role lets a replay run."""
        return await self._decide(replay_id, principal, approve=True, note=note)

    async def reject(
        self, replay_id: str, principal: Principal, *, note: str | None = None
    ) -> dict[str, Any]:
        """Refuse a pending replay; its dead letters go back to open."""
        return await self._decide(replay_id, principal, approve=False, note=note)

    async def _decide(
        self, replay_id: str, principal: Principal, *, approve: bool, note: str | None
    ) -> dict[str, Any]:
        action = "replay.approve" if approve else "replay.reject"
        now = self._clock()

        def fn(conn: duckdb.DuckDBPyConnection) -> tuple[str | None, dict[str, Any]]:
            row = conn.execute(
                "SELECT state, requested_by, total, to_deliver, value FROM replays "
                "WHERE replay_id = ?",
                [replay_id],
            ).fetchone()
            if row is None:
                return "missing", self._audit_fields(
                    principal, action, replay_id, note, {}, "refused: no such replay"
                )
            state, requested_by, total, to_deliver, value = row
            what = {
                "requested_by": requested_by,
                "total": total,
                "to_deliver": to_deliver,
                "value_by_currency": json_value(value),
            }
            refusal: str | None = None
            if not principal.can(Role.APPROVER):
                refusal = f"role {principal.role.name.lower()} may not decide on replays"
            elif state != ReplayState.PENDING_APPROVAL.value:
                refusal = f"replay is {state}, not pending approval"
            elif approve and requested_by == principal.name:
                refusal = "the requester cannot approve their own replay"
            if refusal is not None:
                return refusal, self._audit_fields(
                    principal, action, replay_id, note, what, f"refused: {refusal}"
                )
            decision = ReplayState.APPROVED if approve else ReplayState.REJECTED
            conn.execute(
                "UPDATE replays SET state = ?, decided_by = ?, decided_at = ?, decision_note = ? "
                "WHERE replay_id = ?",
                [decision.value, principal.name, now, note, replay_id],
            )
            conn.execute(
                "INSERT INTO approvals (replay_id, decision, decided_by, role, decided_at, note) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [replay_id, decision.value, principal.name, principal.role.name.lower(), now, note],
            )
            if not approve:
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT dead_letter_id FROM replay_items WHERE replay_id = ? "
                        "AND action = 'deliver'",
                        [replay_id],
                    ).fetchall()
                ]
                move_dead_letters(
                    conn,
                    ids,
                    DeadLetterState.OPEN,
                    by=principal.name,
                    at=now,
                    note=f"replay {replay_id} rejected" + (f": {note}" if note else ""),
                    from_states=(DeadLetterState.REPLAY_REQUESTED,),
                )
            return None, self._audit_fields(
                principal, action, replay_id, note, what, decision.value
            )

        refusal = await self._write_audited(fn)
        if refusal == "missing":
            raise NotFound(f"no replay {replay_id}")
        if refusal is not None:
            if "cannot approve their own" in refusal or "may not decide" in refusal:
                raise ApprovalRefused(refusal)
            raise StateConflict(refusal)
        if approve:
            self._schedule(replay_id)
        return await self.progress(replay_id, items=False)

    # ---------------------------------------------------------------- execute

    async def execute(self, replay_id: str) -> dict[str, Any]:
        """Run an approved replay to the end; its final progress.

        Normally called by the service itself once a replay is approved; public
        for callers that run replays with ``auto_execute=False``.
        """
        now = self._clock()

        refused, raw_corrections, items = await self._lineage.write(
            lambda conn: claim_replay(conn, replay_id, now)
        )
        if refused == "missing":
            raise NotFound(f"no replay {replay_id}")
        if refused is not None:
            raise StateConflict(f"replay {replay_id} is {refused}; only an approved one runs")
        corrections = Corrections.model_validate(raw_corrections or {})
        deliver = [i for i in items if i["action"] == "deliver"]
        events = await self._lineage.read(
            lambda conn: load_events(conn, [i["input_event_id"] for i in deliver])
        )
        live = self._live.setdefault(replay_id, Live())
        try:
            results = await asyncio.gather(
                *(
                    self._delivery.deliver(
                        replay_id, item, events.get(item["input_event_id"]), corrections, live
                    )
                    for item in deliver
                )
            )
            await self._finish(replay_id, items, results)
        finally:
            self._live.pop(replay_id, None)
        return await self.progress(replay_id, items=False)

    async def _finish(
        self, replay_id: str, items: Sequence[dict[str, Any]], results: Sequence[ItemResult]
    ) -> None:
        now = self._clock()

        def fn(conn: duckdb.DuckDBPyConnection) -> tuple[None, dict[str, Any]]:
            final, what = finish_replay(conn, replay_id, items, results, now)
            return None, self._audit_fields(
                _SYSTEM, "replay.execute", replay_id, None, what, final.value
            )

        await self._write_audited(fn)

    # ---------------------------------------------------------------- progress

    async def progress(self, replay_id: str, *, items: bool = True) -> dict[str, Any]:
        """A replay's state, counts and (with ``items``) each item's outcome."""

        record, item_rows = await self._lineage.read(
            lambda conn: read_replay(conn, replay_id, items=items)
        )
        if record is None:
            raise NotFound(f"no replay {replay_id}")
        live = self._live.get(replay_id)
        if live is not None:
            record.update(delivered=live.delivered, succeeded=live.succeeded, failed=live.failed)
            for row in item_rows:
                state = live.items.get(row["dead_letter_id"])
                if state is not None:
                    row["state"] = state.value
        if items:
            record["items"] = item_rows
        return record

    async def list_replays(
        self, *, state: ReplayState | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Replays newest first (optionally in one state) and the total."""
        return await self._lineage.read(
            lambda conn: list_replays(
                conn, state=state.value if state else None, limit=limit, offset=offset
            )
        )


def _require(principal: Principal, role: Role) -> None:
    # The API refuses first; this keeps in-process callers to the same rule.
    if not principal.can(role):
        raise ApprovalRefused(
            f"role {principal.role.name.lower()} may not do this; it needs {role.name.lower()}"
        )
