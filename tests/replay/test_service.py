"""The replay service over a real (in-memory) lineage store and the embedded bus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from replay_support import (
    ADMIN,
    APPROVER,
    OPERATOR,
    VIEWER,
    auto_outcomes,
    failed_order,
    make_order,
    seed,
)

from replay import (
    ApprovalRefused,
    Corrections,
    ReplayService,
    Selection,
    StateConflict,
)
from tracing import Event, Reason, Status, System, ValidationError


async def _state(service: ReplayService, event_id: str) -> str:
    return str((await service.dead_letter(event_id))["state"])


async def test_groups_sum_value_per_reason_and_step(lineage, make_service) -> None:
    service = await make_service()
    at = datetime(2026, 11, 26, 2, 10, tzinfo=UTC)
    pairs = [
        failed_order(make_order(price="100000"), at=at + timedelta(minutes=i)) for i in range(13)
    ]
    pairs.append(failed_order(reason=Reason.MAPPING, at=at))
    await seed(lineage, *pairs)
    groups = await service.groups(Selection(states=("open",)))
    assert [(g["group_id"], g["count"]) for g in groups] == [
        ("downstream_unavailable:erp.order.create", 13),
        ("mapping:erp.order.create", 1),
    ]
    top = groups[0]
    assert top["value_by_currency"] == {"USD": Decimal("2600000.00")}
    assert top["label"] == (
        "13 downstream_unavailable at erp.order.create since 2026-11-26 02:10 worth USD 2.6M"
    )
    page, total = await service.dead_letters(
        Selection(group="mapping:erp.order.create", states=("open",))
    )
    assert total == 1 and page[0]["reason"] == "mapping"


async def test_dead_letter_view_has_original_and_masked_input(lineage, make_service) -> None:
    service = await make_service()
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    view = await service.dead_letter(dead.event_id)
    assert view["event"]["event_id"] == dead.event_id
    assert view["input_event"]["event_id"] == trigger.event_id
    assert view["input_event"]["payload"]["order"]["customer"]["email"] == "a***@acme.test"
    assert view["state"] == "open" and view["attempts"] == 5


async def test_dry_run_shows_key_target_and_skips_what_the_target_holds(
    lineage, make_service
) -> None:
    held_trigger, held = failed_order()
    free_trigger, free = failed_order()
    await seed(lineage, (held_trigger, held), (free_trigger, free))

    async def probe(event: Event) -> bool | None:
        return event.event_id == held.event_id

    service = await make_service(probe=probe)
    plan = await service.dry_run(Selection(step="erp.order.create"))
    by_id = {item.dead_letter_id: item for item in plan.items}
    assert by_id[held.event_id].action == "skip"
    assert by_id[held.event_id].skip_reason == "target already holds the effect"
    assert by_id[free.event_id].action == "deliver"
    assert by_id[free.event_id].idempotency_key == free_trigger.idempotency_key
    assert by_id[free.event_id].input_event_id == free_trigger.event_id
    assert by_id[free.event_id].target == "erp"
    assert (plan.total, plan.to_deliver, plan.skipped) == (2, 1, 1)
    assert plan.needs_approval is True
    assert plan.targets == {"erp": 1}
    # A dry run changes nothing.
    assert await _state(service, held.event_id) == "open"


async def test_a_selection_of_everything_is_refused(make_service) -> None:
    service = await make_service()
    with pytest.raises(ValidationError):
        await service.dry_run(Selection())


async def test_money_replay_waits_for_a_second_person(lineage, bus, make_service) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    auto_outcomes(bus)
    service = await make_service()
    record = await service.request(
        Selection(event_id=dead.event_id), OPERATOR, reason="ERP is back"
    )
    assert record["state"] == "pending_approval" and record["needs_approval"] is True
    assert await _state(service, dead.event_id) == "replay_requested"
    with pytest.raises(ApprovalRefused):
        await service.approve(record["replay_id"], OPERATOR)
    await service.approve(record["replay_id"], APPROVER, note="checked the ERP")
    done = await asyncio.wait_for(service.wait(record["replay_id"]), 10)
    assert done["state"] == "completed"
    assert done["succeeded"] == 1 and done["decided_by"] == "anna"
    [item] = done["items"]
    assert item["state"] == "succeeded" and item["outcome_event_id"]
    letter = await service.dead_letter(dead.event_id)
    assert letter["state"] == "resolved" and letter["resolved_by_event"] == item["outcome_event_id"]


async def test_self_approval_is_refused_even_for_an_admin(lineage, make_service) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    service = await make_service()
    record = await service.request(Selection(event_id=dead.event_id), ADMIN, reason="retry")
    with pytest.raises(ApprovalRefused, match="own"):
        await service.approve(record["replay_id"], ADMIN)
    entries, _ = await service.audit(action="replay.approve")
    assert entries[0]["outcome"].startswith("refused: the requester cannot approve")
    assert (await service.progress(record["replay_id"]))["state"] == "pending_approval"


async def test_reject_reopens_and_a_decided_replay_cannot_be_decided_again(
    lineage, make_service
) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    service = await make_service()
    record = await service.request(Selection(event_id=dead.event_id), OPERATOR, reason="retry")
    await service.reject(record["replay_id"], APPROVER, note="wrong customer")
    assert await _state(service, dead.event_id) == "open"
    with pytest.raises(StateConflict):
        await service.approve(record["replay_id"], ADMIN)


async def test_a_step_without_money_runs_at_once(lineage, bus, make_service) -> None:
    trigger, dead = failed_order(
        step="support.entitlement.activate", kind="entitlement.activated", target=System.SUPPORT
    )
    await seed(lineage, (trigger, dead))

    async def flow(event: Event) -> None:
        if event.status is Status.REPLAYED:
            await bus.publish(
                dead.model_copy(
                    update={
                        "event_id": f"{event.event_id[:-4]}beef",
                        "causation_id": event.event_id,
                        "status": Status.OK,
                        "error": None,
                    }
                )
            )

    bus.subscribe("flow", flow, kinds=frozenset({"opportunity.closed_won"}))
    service = await make_service()
    record = await service.request(Selection(event_id=dead.event_id), OPERATOR, reason="retry")
    assert record["needs_approval"] is False
    done = await asyncio.wait_for(service.wait(record["replay_id"]), 10)
    assert done["state"] == "completed"
    assert await _state(service, dead.event_id) == "resolved"


async def test_replayed_input_carries_links_and_the_original_key(
    lineage, bus, collector, make_service
) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    seen = auto_outcomes(bus)
    service = await make_service()
    record = await service.request(Selection(event_id=dead.event_id), OPERATOR, reason="retry")
    await service.approve(record["replay_id"], APPROVER)
    await asyncio.wait_for(service.wait(record["replay_id"]), 10)
    [replayed] = seen
    assert replayed.event_id != trigger.event_id
    assert replayed.idempotency_key == trigger.idempotency_key
    assert replayed.status is Status.REPLAYED
    assert replayed.replay_of == dead.event_id
    assert replayed.replay_id == record["replay_id"]
    assert replayed.correlation_id == trigger.correlation_id
    # Both the replayed input and its outcome are in the transaction's lineage.
    await bus.drain()
    await collector.flush()
    rows = await lineage.read(
        lambda c: c.execute(
            "SELECT kind, status, replay_id FROM events WHERE correlation_id = ? "
            "ORDER BY event_time, event_id",
            [trigger.correlation_id],
        ).fetchall()
    )
    assert ("opportunity.closed_won", "replayed", record["replay_id"]) in rows
    assert ("order.created", "ok", record["replay_id"]) in rows


async def test_a_failed_redo_leaves_the_dead_letter_open(lineage, bus, make_service) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    auto_outcomes(bus, ok=False)
    service = await make_service()
    record = await service.request(Selection(event_id=dead.event_id), OPERATOR, reason="retry")
    await service.approve(record["replay_id"], APPROVER)
    done = await asyncio.wait_for(service.wait(record["replay_id"]), 10)
    assert done["state"] == "failed" and done["failed"] == 1
    assert done["items"][0]["error"] == "downstream_unavailable: still down"
    letter = await service.dead_letter(dead.event_id)
    assert letter["state"] == "open" and letter["attempts"] == 6


async def test_no_outcome_in_time_is_a_timeout_and_reopens(lineage, make_service) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    service = await make_service(outcome_timeout=0.2)
    record = await service.request(Selection(event_id=dead.event_id), OPERATOR, reason="retry")
    await service.approve(record["replay_id"], APPROVER)
    done = await asyncio.wait_for(service.wait(record["replay_id"]), 10)
    assert done["items"][0]["state"] == "timeout"
    assert await _state(service, dead.event_id) == "open"


async def test_ignore_needs_a_reason_and_an_open_dead_letter(lineage, make_service) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    service = await make_service()
    with pytest.raises(ValidationError):
        await service.ignore(dead.event_id, OPERATOR, reason=" ")
    with pytest.raises(ApprovalRefused):
        await service.ignore(dead.event_id, VIEWER, reason="not mine")
    letter = await service.ignore(dead.event_id, OPERATOR, reason="test order, cancelled in CRM")
    assert letter["state"] == "ignored" and letter["state_changed_by"] == "olga"
    assert letter["state_note"] == "test order, cancelled in CRM"
    with pytest.raises(StateConflict):
        await service.ignore(dead.event_id, OPERATOR, reason="again")


async def test_corrections_are_validated_and_their_diff_audited(lineage, bus, make_service) -> None:
    trigger, dead = failed_order(make_order(sku="OLD-PRO"), reason=Reason.MAPPING)
    await seed(lineage, (trigger, dead))
    seen = auto_outcomes(bus)
    service = await make_service(known_skus={"PLAT-PRO", "PLAT-ENT"})
    selection = Selection(event_id=dead.event_id)
    bad = [
        Corrections(sku_map={"OLD-PRO": "NOPE"}),  # not in the catalogue
        Corrections(sku_map={"MISSING": "PLAT-PRO"}),  # not in the order
        Corrections(
            patch={"order": {"lines": [{"sku": "PLAT-PRO", "quantity": "-1", "unit_price": "5"}]}}
        ),
        Corrections(patch={"order": {"currency": "DOLLARS"}}),
    ]
    for corrections in bad:
        with pytest.raises(ValidationError):
            await service.request(selection, OPERATOR, reason="fix", corrections=corrections)
    fix = Corrections(
        sku_map={"OLD-PRO": "PLAT-PRO"}, patch={"order": {"customer": {"email": "jo@acme.test"}}}
    )
    record = await service.request(selection, OPERATOR, reason="map the old SKU", corrections=fix)
    await service.approve(record["replay_id"], APPROVER)
    await asyncio.wait_for(service.wait(record["replay_id"]), 10)
    [replayed] = seen
    assert replayed.payload["order"]["lines"][0]["sku"] == "PLAT-PRO"
    assert replayed.payload["corrections"] == {"sku_map": {"OLD-PRO": "PLAT-PRO"}}
    [entry], _ = await service.audit(action="replay.request")
    assert entry["what"]["diff"] == [
        # PII in the diff is masked like any stored payload.
        {"path": "order.customer.email", "before": "a***@acme.test", "after": "j***@acme.test"},
        {"path": "order.lines[0].sku", "before": "OLD-PRO", "after": "PLAT-PRO"},
    ]


async def test_sla_rule_selects_its_steps(lineage, make_service) -> None:
    a = failed_order()
    b = failed_order(step="erp.invoice.post", kind="invoice.posted")
    await seed(lineage, a, b)
    service = await make_service(sla_rule_steps={"invoice-sync": ["erp.invoice.post"]})
    plan = await service.dry_run(Selection(sla_rule="invoice-sync"))
    assert [i.dead_letter_id for i in plan.items] == [b[1].event_id]
    with pytest.raises(ValidationError):
        await service.dry_run(Selection(sla_rule="nope"))


async def test_an_unreachable_bus_fails_the_item_cleanly(lineage, make_service, bus) -> None:
    trigger, dead = failed_order()
    await seed(lineage, (trigger, dead))
    service = await make_service()
    record = await service.request(Selection(event_id=dead.event_id), OPERATOR, reason="retry")
    await bus.stop()  # the bus refuses publishes now
    await service.approve(record["replay_id"], APPROVER)
    done = await asyncio.wait_for(service.wait(record["replay_id"]), 10)
    assert done["items"][0]["state"] == "failed"
    assert done["items"][0]["error"].startswith("bus:")
    assert await _state(service, dead.event_id) == "open"


async def test_filter_by_target_and_time_range(lineage, make_service) -> None:
    at = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    early = failed_order(at=at)
    late = failed_order(at=at + timedelta(hours=2))
    billing = failed_order(
        step="billing.subscription.create",
        kind="subscription.created",
        target=System.BILLING,
        at=at + timedelta(hours=2),
    )
    await seed(lineage, early, late, billing)
    service = await make_service()
    window = Selection(
        target=System.ERP, since=at + timedelta(hours=1), until=at + timedelta(hours=3)
    )
    plan = await service.dry_run(window)
    assert [item.dead_letter_id for item in plan.items] == [late[1].event_id]
    by_transaction = await service.dry_run(Selection(correlation_id=billing[1].correlation_id))
    assert [item.step for item in by_transaction.items] == ["billing.subscription.create"]
