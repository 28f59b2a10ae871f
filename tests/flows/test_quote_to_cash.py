from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError as PydanticValidationError

from adapters import DeliveryLedger, RetryPolicy
from adapters.billing import BillingWebhookIngress
from adapters.crm import CrmPoller
from adapters.flows import SPEC, QuoteToCash, StepRunner, apply_corrections, prevalidate
from collector import EmbeddedBus
from tracing import Event, MappingError, Reason, Status, System, ValidationError, correlation_id_for

from ._fakes import FakeBilling, FakeCrm, FakeErp, FakeSupport, order


async def _no_sleep(_: float) -> None:
    return None


class Change:
    def __init__(self, opp: str, modstamp: datetime, won: bool = True):
        self.opportunity_id, self.modstamp, self.is_won = opp, modstamp, won
        self.account_name = "Acme GmbH"
        self.account_id, self.stage = "001A", "Closed Won" if won else "Prospecting"
        self.amount, self.currency = Decimal("398"), "USD"


class Feed:
    def __init__(self):
        self.changes: list[Change] = []

    async def opportunity_changes(self, since):
        return [c for c in self.changes if c.modstamp > since]


@pytest.fixture
async def world():
    bus = EmbeddedBus(partitions=2)
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    bus.subscribe("recorder", record)
    crm, erp, billing, support = FakeCrm(), FakeErp(), FakeBilling(), FakeSupport()
    flow = QuoteToCash(
        bus,
        StepRunner(bus, RetryPolicy(max_attempts=3), sleep=_no_sleep),
        crm=crm,
        erp=erp,
        billing=billing,
        support=support,
    )
    flow.attach()
    feed = Feed()
    ledger = DeliveryLedger()
    poller = CrmPoller(feed, bus, ledger=ledger, since=datetime(2026, 1, 1, tzinfo=UTC))
    await bus.start()
    yield dict(
        bus=bus,
        seen=seen,
        crm=crm,
        erp=erp,
        billing=billing,
        support=support,
        flow=flow,
        feed=feed,
        poller=poller,
        ledger=ledger,
    )
    await bus.stop()


def _kinds(events, status=Status.OK):
    return [e.kind for e in events if e.status == status]


async def test_closed_won_runs_the_whole_chain_under_one_correlation_id(world):
    world["crm"].orders["006A"] = order("006A")
    world["feed"].changes.append(Change("006A", datetime(2026, 5, 1, tzinfo=UTC)))
    await world["poller"].poll_once()
    await world["bus"].drain()
    everything = world["seen"]
    # The ERP state travels back to the opportunity, a branch caused by the confirmation.
    (status,) = [e for e in everything if e.kind == "order.status.published"]
    confirmed = next(e for e in everything if e.kind == "order.confirmed")
    assert status.causation_id == confirmed.event_id and status.step == "crm.order.status"
    assert status.target == "crm" and status.payload["erp_state"] == "confirmed"
    assert world["crm"].statuses == [("006A", "confirmed")]
    seen = [e for e in everything if e is not status]
    assert _kinds(seen) == [
        "opportunity.closed_won",
        "order.created",
        "order.confirmed",
        "subscription.created",
        "entitlement.activated",
    ]
    cid = correlation_id_for("crm", "opportunity", "006A")
    assert {e.correlation_id for e in everything} == {cid}
    # An unbroken causation chain: each event points at the one before it.
    for cause, effect in itertools.pairwise(seen):
        assert effect.causation_id == cause.event_id
    # One trace for the synchronous chain, each step its own span.
    assert len({e.trace_id for e in everything}) == 1
    assert all(len(e.trace_id) == 32 for e in everything)
    assert len({e.span_id for e in everything}) == len(everything)
    assert all(e.amount == Decimal("398") and e.currency == "USD" for e in everything)
    assert world["erp"].sales["006A"].state == "confirmed"

    # Billing then invoices it: a paid-invoice webhook posts the invoice in the ERP.
    ingress = BillingWebhookIngress(
        world["bus"],
        invoice_from_event=lambda ev: _invoice(ev),
        subscription_metadata=world["billing"].get_subscription_metadata,
        ledger=world["ledger"],
    )
    stripe_event = {
        "id": "evt_1",
        "type": "invoice.paid",
        "created": 1780000000,
        "data": {"object": {"id": "in_1", "subscription": "sub_1"}},
    }
    await ingress.on_event(stripe_event)
    await ingress.on_event({**stripe_event, "id": "evt_2", "type": "invoice.payment_succeeded"})
    await world["bus"].drain()
    seen = [e for e in everything if e is not status]
    assert _kinds(seen)[-2:] == ["invoice.paid", "invoice.posted"]
    assert _kinds(seen, Status.DUPLICATE) == ["invoice.paid"]
    paid = next(e for e in seen if e.kind == "invoice.paid" and e.status == Status.OK)
    sub = next(e for e in seen if e.kind == "subscription.created")
    assert paid.causation_id == sub.event_id and paid.correlation_id == cid
    # Received after its cause (billing's whole-second ``created`` is kept in the payload).
    assert paid.event_time >= sub.event_time
    assert paid.payload["billed_at"] == "2026-05-28T20:26:40+00:00"
    assert list(world["erp"].invoices) == ["in_1"]
    # Every object the flow's events carry is one its spec declares a payload model
    # for (what replay validates a correction with), and it validates as that model.
    carried = {(e.kind, k): v for e in seen for k, v in e.payload.items() if isinstance(v, dict)}
    assert sorted(carried) == [("order.created", "customer")]
    for (_, key), value in carried.items():
        SPEC.payload_models[key].model_validate(value)


def _invoice(stripe_event):
    from adapters import Invoice

    obj = stripe_event["data"]["object"]
    return Invoice(
        invoice_id=obj["id"],
        customer_id="cus_1",
        subscription_id=obj["subscription"],
        currency="USD",
        amount_due=Decimal("398"),
        status="paid",
    )


async def test_a_duplicate_delivery_is_recorded_and_not_acted_on(world):
    world["crm"].orders["006A"] = order("006A")
    world["feed"].changes.append(Change("006A", datetime(2026, 5, 1, tzinfo=UTC)))
    await world["poller"].poll_once()
    await world["poller"].poll_once()  # overlap re-read: not a delivery, skipped silently
    world["feed"].changes.append(Change("006A", datetime(2026, 5, 1, 0, 5, tzinfo=UTC)))
    await world["poller"].poll_once()  # the CRM delivered it again: a duplicate
    await world["bus"].drain()
    assert _kinds(world["seen"], Status.DUPLICATE) == ["opportunity.closed_won"]
    assert _kinds(world["seen"]).count("order.created") == 1
    assert len(world["erp"].sales) == 1


async def test_transient_erp_failures_retry_then_succeed(world):
    world["crm"].orders["006A"] = order("006A")
    world["erp"].fail_times = 2
    world["feed"].changes.append(Change("006A", datetime(2026, 5, 1, tzinfo=UTC)))
    await world["poller"].poll_once()
    await world["bus"].drain()
    retrying = [e for e in world["seen"] if e.status == Status.RETRYING]
    assert [(e.step, e.attempt) for e in retrying] == [
        ("erp.order.create", 1),
        ("erp.order.create", 2),
    ]
    assert all(e.error and e.error.reason == Reason.DOWNSTREAM_UNAVAILABLE for e in retrying)
    created = next(e for e in world["seen"] if e.kind == "order.created" and e.status == Status.OK)
    assert created.attempt == 3


async def test_an_outage_beyond_the_policy_is_a_dead_letter(world):
    world["crm"].orders["006A"] = order("006A")
    world["erp"].fail_times = 99
    world["feed"].changes.append(Change("006A", datetime(2026, 5, 1, tzinfo=UTC)))
    await world["poller"].poll_once()
    await world["bus"].drain()
    dead = [e for e in world["seen"] if e.status == Status.DEAD_LETTERED]
    assert len(dead) == 1
    assert dead[0].step == "erp.order.create" and dead[0].attempt == 3
    assert dead[0].error.reason == Reason.DOWNSTREAM_UNAVAILABLE
    assert dead[0].causation_id == world["seen"][0].event_id
    assert "order.confirmed" not in _kinds(world["seen"])


async def test_a_malformed_opportunity_is_a_validation_dead_letter_without_retries(world):
    world["crm"].errors["006B"] = ValidationError("Amount is missing", field="Amount")
    world["feed"].changes.append(Change("006B", datetime(2026, 5, 1, tzinfo=UTC)))
    await world["poller"].poll_once()
    await world["bus"].drain()
    dead = [e for e in world["seen"] if e.status == Status.DEAD_LETTERED]
    assert [(d.step, d.error.reason, d.attempt) for d in dead] == [
        ("erp.order.create", Reason.VALIDATION, 1)
    ]
    assert not [e for e in world["seen"] if e.status == Status.RETRYING]
    assert world["erp"].calls == 0


async def test_replaying_the_input_after_a_fix_completes_without_doubling(world):
    world["crm"].orders["006A"] = order("006A", sku="LEGACY-GOLD")
    world["flow"]._skus = frozenset({"PLAT-PRO"})
    world["feed"].changes.append(Change("006A", datetime(2026, 5, 1, tzinfo=UTC)))
    await world["poller"].poll_once()
    await world["bus"].drain()
    dead = next(e for e in world["seen"] if e.status == Status.DEAD_LETTERED)
    assert dead.error.reason == Reason.MAPPING
    assert await world["flow"].probe(dead) is False
    original = world["seen"][0]
    replay = original.model_copy(
        update={
            "event_id": "0190aaaa-0000-7000-8000-000000000001",
            "status": Status.REPLAYED,
            "replay_of": dead.event_id,
            "replay_id": "r1",
            "payload": {
                **original.payload,
                "corrections": {"sku_map": {"LEGACY-GOLD": "PLAT-PRO"}},
            },
        }
    )
    for _ in range(3):
        await world["bus"].publish(replay)
    await world["bus"].drain()
    assert len(world["erp"].sales) == 1 and len(world["billing"].subscriptions) == 1
    assert len(world["support"].tickets) == 1
    created = [e for e in world["seen"] if e.kind == "order.created" and e.status == Status.OK]
    assert [e.payload["created"] for e in created] == [True, False, False]
    assert all(e.replay_of == dead.event_id for e in created)
    assert await world["flow"].probe(dead) is True


def test_prevalidation_rules():
    good = order()
    prevalidate(good, currencies=frozenset({"USD"}), payment_terms=frozenset({"NET30"}))
    with pytest.raises(ValidationError, match="currency"):
        prevalidate(
            order(currency="EUR"), currencies=frozenset({"USD"}), payment_terms=frozenset({"NET30"})
        )
    with pytest.raises(MappingError) as info:
        prevalidate(
            order(sku="X"),
            currencies=frozenset({"USD"}),
            payment_terms=frozenset({"NET30"}),
            known_skus=frozenset({"PLAT-PRO"}),
        )
    assert info.value.field == "lines[0].sku"


def test_corrections_are_validated_as_canonical():
    fixed = apply_corrections(order(sku="OLD"), {"sku_map": {"OLD": "PLAT-PRO"}})
    assert fixed.lines[0].sku == "PLAT-PRO"
    with pytest.raises(PydanticValidationError):
        apply_corrections(order(), {"currency": "DOLLARS"})


async def test_rejected_webhooks_are_recorded(world):
    ingress = BillingWebhookIngress(
        world["bus"],
        invoice_from_event=_invoice,
        subscription_metadata=world["billing"].get_subscription_metadata,
    )
    await ingress.on_rejected("bad_signature", "no v1 signature matched")
    await world["bus"].drain()
    [event] = world["seen"]
    assert (event.kind, event.status, event.source) == (
        "webhook.rejected",
        Status.FAILED,
        System.BILLING,
    )
    assert event.error.reason == Reason.AUTH


async def _billing_down(_: str) -> dict[str, str]:
    from tracing import RateLimited

    raise RateLimited("429 from billing", retry_after=2)


async def test_a_paid_invoice_is_linked_from_its_own_metadata_while_billing_is_rate_limited(world):
    ingress = BillingWebhookIngress(
        world["bus"],
        invoice_from_event=_invoice,
        subscription_metadata=_billing_down,
        event_metadata=lambda _: {"order_ref": "006A", "interlock_event_id": "evt-sub"},
    )
    await ingress.on_event(
        {
            "id": "evt_9",
            "type": "invoice.paid",
            "created": 1780000000,
            "data": {"object": {"id": "in_9", "subscription": "sub_9"}},
        }
    )
    await world["bus"].drain()
    paid = next(e for e in world["seen"] if e.kind == "invoice.paid")
    assert paid.causation_id == "evt-sub"
    assert paid.correlation_id == correlation_id_for("crm", "opportunity", "006A")


async def test_an_invoice_that_cannot_be_linked_yet_is_refused_and_recorded(world):
    from tracing import BusError

    ingress = BillingWebhookIngress(
        world["bus"], invoice_from_event=_invoice, subscription_metadata=_billing_down
    )
    with pytest.raises(BusError):
        await ingress.on_event(
            {
                "id": "evt_8",
                "type": "invoice.paid",
                "data": {"object": {"id": "in_8", "subscription": "sub_8"}},
            }
        )
    await world["bus"].drain()
    [event] = world["seen"]
    assert event.kind == "webhook.rejected"
    assert event.error.reason == Reason.DOWNSTREAM_UNAVAILABLE


async def test_later_erp_sale_states_are_published_to_the_crm(world):
    from types import SimpleNamespace

    from adapters.flows._sale_states import SaleStatePoller

    class Feed:
        def __init__(self) -> None:
            self.rows = []

        async def sale_changes(self, since):
            return [r for r in self.rows if r[1] >= since]

    feed = Feed()
    poller = SaleStatePoller(feed, world["bus"], since=datetime(2026, 5, 1, tzinfo=UTC))
    at = datetime(2026, 5, 2, tzinfo=UTC)
    feed.rows = [
        (SimpleNamespace(id=7, number="SO7", reference="006B", state="done"), at),
        (SimpleNamespace(id=8, number="SO8", reference="006C", state="cancelled"), at),
        # A sale not from the CRM, and a draft: not published.
        (SimpleNamespace(id=9, number="SO9", reference="", state="done"), at),
        (SimpleNamespace(id=10, number=None, reference="006D", state="draft"), at),
    ]
    await poller.poll_once()
    await world["bus"].drain()
    assert sorted(world["crm"].statuses) == [("006B", "done"), ("006C", "cancelled")]
    published = [e for e in world["seen"] if e.kind == "order.status.published"]
    assert {e.correlation_id for e in published} == {
        correlation_id_for("crm", "opportunity", "006B"),
        correlation_id_for("crm", "opportunity", "006C"),
    }
    assert all(e.step == "crm.order.status" and e.status == Status.OK for e in published)
