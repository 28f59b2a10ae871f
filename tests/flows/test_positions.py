"""Durable poll positions: stored atomically, advanced only after publishing, resumed on restart."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters import PositionStore, TimeCursor, positions_path_for
from adapters.billing import (
    BillingWebhookIngress,
    event_invoice_metadata,
    invoice_from_event,
    parse_stripe_event,
)
from adapters.crm import CrmPoller
from collector import EmbeddedBus
from tracing import BusError, Event, Status, StoreError

NOW = datetime.now(UTC).replace(microsecond=0)


class Change:
    def __init__(self, opp: str, modstamp: datetime, won: bool = True) -> None:
        self.opportunity_id, self.modstamp, self.is_won = opp, modstamp, won
        self.account_name = "Acme GmbH"
        self.account_id, self.stage = "001A", "Closed Won" if won else "Prospecting"
        self.amount, self.currency = Decimal("398"), "USD"


class Feed:
    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes
        self.asked: list[datetime] = []

    async def opportunity_changes(self, since: datetime) -> list[Change]:
        self.asked.append(since)
        return sorted((c for c in self.changes if c.modstamp > since), key=lambda c: c.modstamp)


class Crash(Exception):
    """The process dies (kill -9) at this point."""


class CrashingStore(PositionStore):
    """A real file store whose next write never happens: the process dies first."""

    async def put(self, name: str, value: Mapping[str, Any]) -> None:
        raise Crash(name)


class FlakyBus:
    """Publishes into a list; refuses the ``fail_at``-th publish (0-based) with BusError."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.events: list[Event] = []
        self.calls = 0
        self.fail_at = fail_at

    async def publish(self, event: Event) -> None:
        call, self.calls = self.calls, self.calls + 1
        if call == self.fail_at:
            raise BusError("bus is full")
        self.events.append(event)


def _store(tmp_path: Path) -> PositionStore:
    return PositionStore(tmp_path / "lineage.duckdb.positions.json").load()


def _opps(events: list[Event]) -> list[str]:
    return [e.entity_id for e in events if e.kind == "opportunity.closed_won"]


# -- the store -----------------------------------------------------------------------------


async def test_positions_survive_a_new_store_and_writes_are_whole(tmp_path: Path) -> None:
    path = positions_path_for(tmp_path / "lineage.duckdb")
    assert path == tmp_path / "lineage.duckdb.positions.json"
    assert positions_path_for(":memory:") is None
    store = PositionStore(path).load()
    await store.put("a", {"at": 1})
    await store.put("b", {"at": 2})
    assert json.loads(path.read_text()) == {"a": {"at": 1}, "b": {"at": 2}}
    assert not path.with_name(path.name + ".tmp").exists()
    # A temporary file left by a crash mid-write is not read: the last whole write is.
    path.with_name(path.name + ".tmp").write_text("{half")
    assert PositionStore(path).load().get("b") == {"at": 2}


def test_a_damaged_positions_file_is_an_error_not_a_guess(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(StoreError, match=r"p\.json"):
        PositionStore(path).load()
    path.write_text('{"crm": 3}')
    with pytest.raises(StoreError):
        PositionStore(path).load()
    with pytest.raises(StoreError):
        TimeCursor.from_json({"at": "yesterday"}, default_at=NOW, overlap=timedelta(0))


def test_a_cursor_keeps_only_the_keys_inside_its_overlap() -> None:
    cursor = TimeCursor(at=NOW, overlap=timedelta(seconds=10))
    cursor.advance("old", NOW - timedelta(seconds=30))
    cursor.advance("new", NOW + timedelta(seconds=5))
    cursor.prune()
    assert cursor.at == NOW + timedelta(seconds=5) and list(cursor.seen) == ["new"]
    again = TimeCursor.from_json(cursor.to_json(), default_at=NOW, overlap=timedelta(seconds=10))
    assert again == cursor


# -- the CRM change feed ---------------------------------------------------------------------


async def test_a_restart_after_a_long_outage_resumes_at_the_stored_position(
    tmp_path: Path,
) -> None:
    feed = Feed([Change("006W", NOW - timedelta(hours=2))])
    bus = FlakyBus()
    first = CrmPoller(feed, bus, since=NOW - timedelta(hours=3), positions=_store(tmp_path))  # type: ignore[arg-type]
    await first.poll_once()
    # Down for an hour: 50 deals close, the oldest 60 minutes before the restart.
    feed.changes += [Change(f"006D{i:02d}", NOW - timedelta(minutes=60 - i)) for i in range(50)]
    restarted = CrmPoller(feed, bus, positions=_store(tmp_path))  # type: ignore[arg-type]
    await restarted.poll_once()
    assert _opps(bus.events) == ["006W"] + [f"006D{i:02d}" for i in range(50)]
    assert feed.asked[-1] < NOW - timedelta(hours=2)


async def test_a_crash_between_publish_and_position_write_re_reads_never_skips(
    tmp_path: Path,
) -> None:
    feed = Feed([Change("006A", NOW - timedelta(minutes=3)), Change("006B", NOW)])
    bus = FlakyBus()
    path = tmp_path / "lineage.duckdb.positions.json"
    doomed = CrmPoller(feed, bus, since=NOW - timedelta(hours=1), positions=CrashingStore(path))  # type: ignore[arg-type]
    with pytest.raises(Crash):
        await doomed.poll_once()
    assert _opps(bus.events) == ["006A", "006B"]  # published, but the position never written
    restarted = CrmPoller(feed, bus, since=NOW - timedelta(hours=1), positions=_store(tmp_path))  # type: ignore[arg-type]
    await restarted.poll_once()
    # Re-read after the restart (the targets' idempotency absorbs the repeat), none skipped.
    assert _opps(bus.events) == ["006A", "006B", "006A", "006B"]
    await restarted.poll_once()
    assert len(bus.events) == 4  # now stored: the overlap re-read is recognised


async def test_the_position_moves_only_past_published_changes(tmp_path: Path) -> None:
    changes = [Change(f"006{c}", NOW - timedelta(minutes=10 - i)) for i, c in enumerate("ABC")]
    feed = Feed(changes)
    bus = FlakyBus(fail_at=1)  # 006B cannot be published
    poller = CrmPoller(feed, bus, since=NOW - timedelta(hours=1), positions=_store(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(BusError):
        await poller.poll_once()
    assert poller.position == changes[0].modstamp
    restarted = CrmPoller(feed, bus, positions=_store(tmp_path))  # type: ignore[arg-type]
    await restarted.poll_once()
    assert _opps(bus.events) == ["006A", "006B", "006C"]


# -- billing: webhooks and the events API -----------------------------------------------------


def _paid(n: int, created: datetime) -> dict[str, Any]:
    return {
        "id": f"evt_{n}",
        "object": "event",
        "type": "invoice.payment_succeeded",
        "created": int(created.timestamp()),
        "data": {
            "object": {
                "object": "invoice",
                "id": f"in_{n}",
                "customer": "cus_1",
                "currency": "usd",
                "amount_due": 1000,
                "amount_paid": 1000,
                "status": "paid",
                "subscription": f"sub_{n}",
                "lines": {
                    "data": [
                        {
                            "metadata": {
                                "order_ref": f"006{n:03d}",
                                "customer_id": "001A",
                                "interlock_event_id": f"e-{n}",
                            }
                        }
                    ]
                },
            }
        },
    }


class EventsApi:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.asked: list[int] = []

    async def list_events(self, *, created_gte: int) -> list[dict[str, Any]]:
        self.asked.append(created_gte)
        return [e for e in self.events if e["created"] >= created_gte]


async def _no_lookup(_: str) -> dict[str, str]:
    return {}


def _ingress(
    bus: Any, store: PositionStore, since: datetime | None = None
) -> BillingWebhookIngress:
    return BillingWebhookIngress(
        bus,
        invoice_from_event=invoice_from_event,
        subscription_metadata=_no_lookup,
        event_metadata=event_invoice_metadata,
        positions=store,
        parse_event=parse_stripe_event,
        since=since,
    )


def _paid_invoices(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.entity_id, e.status) for e in events if e.kind == "invoice.paid"]


async def test_events_missed_while_down_are_caught_up_once_deduplicated_by_event_id(
    tmp_path: Path,
) -> None:
    bus = FlakyBus()
    api = EventsApi([_paid(1, NOW - timedelta(minutes=50))])
    first = _ingress(bus, _store(tmp_path), since=NOW - timedelta(hours=1))
    await first.on_event(api.events[0])  # its webhook arrived
    assert await first.catch_up(api) == 0  # and the events API read skips it by ID
    # Down: three invoices are paid, their webhooks never arrive.
    api.events += [_paid(n, NOW - timedelta(minutes=40 - n)) for n in (2, 3, 4)]
    restarted = _ingress(bus, _store(tmp_path))
    assert await restarted.catch_up(api) == 3
    assert api.asked[-1] <= int((NOW - timedelta(minutes=50)).timestamp())
    assert _paid_invoices(bus.events) == [(f"in_{n}", Status.OK) for n in (1, 2, 3, 4)]
    # Restarted again: nothing is new; a late webhook of a caught-up event is a duplicate.
    again = _ingress(bus, _store(tmp_path))
    assert await again.catch_up(api) == 0
    await again.on_event(api.events[2])
    assert _paid_invoices(bus.events)[-1] == ("in_3", Status.DUPLICATE)
    assert len(_paid_invoices(bus.events)) == 5


async def test_a_bus_failure_during_catch_up_resumes_at_the_failed_event(tmp_path: Path) -> None:
    api = EventsApi([_paid(n, NOW - timedelta(minutes=30 - n)) for n in (1, 2, 3)])
    bus = FlakyBus(fail_at=1)
    ingress = _ingress(bus, _store(tmp_path), since=NOW - timedelta(hours=1))
    with pytest.raises(BusError):
        await ingress.catch_up(api)
    restarted = _ingress(bus, _store(tmp_path))
    assert await restarted.catch_up(api) == 2
    assert [i for i, _ in _paid_invoices(bus.events)] == ["in_1", "in_2", "in_3"]


async def test_a_misfit_event_from_the_api_is_recorded_and_passed(tmp_path: Path) -> None:
    bad = _paid(1, NOW - timedelta(minutes=5))
    bad["data"]["object"]["lines"] = []
    api = EventsApi([bad, _paid(2, NOW - timedelta(minutes=4))])
    bus = EmbeddedBus(partitions=1)
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    bus.subscribe("recorder", record)
    await bus.start()
    try:
        ingress = _ingress(bus, _store(tmp_path), since=NOW - timedelta(hours=1))
        assert await ingress.catch_up(api) == 2
        await bus.drain()
    finally:
        await bus.stop()
    [rejected] = [e for e in seen if e.kind == "webhook.rejected"]
    assert rejected.error is not None and rejected.error.error_type == "unprocessable"
    assert _paid_invoices(seen) == [("in_2", Status.OK)]


async def test_a_first_read_that_finds_nothing_still_stores_where_it_started(
    tmp_path: Path,
) -> None:
    started = NOW - timedelta(hours=2)
    feed, api, bus = Feed([]), EventsApi([]), FlakyBus()
    await CrmPoller(feed, bus, since=started, positions=_store(tmp_path)).poll_once()  # type: ignore[arg-type]
    await _ingress(bus, _store(tmp_path), since=started).catch_up(api)
    # Down for an hour and more; the restart's own look-back would start too late.
    feed.changes.append(Change("006L", NOW - timedelta(minutes=90)))
    api.events.append(_paid(7, NOW - timedelta(minutes=90)))
    await CrmPoller(feed, bus, positions=_store(tmp_path)).poll_once()  # type: ignore[arg-type]
    assert await _ingress(bus, _store(tmp_path)).catch_up(api) == 1
    assert _opps(bus.events) == ["006L"] and _paid_invoices(bus.events) == [("in_7", Status.OK)]


async def test_a_won_deal_touched_by_a_write_back_is_a_duplicate_after_a_restart(
    tmp_path: Path,
) -> None:
    """Interlock's own write-back (the ERP status on the opportunity) moves its
    SystemModstamp; after a restart the re-read is a duplicate, not a second deal."""
    feed = Feed([Change("006W", NOW - timedelta(minutes=3))])
    bus = FlakyBus()
    first = CrmPoller(feed, bus, since=NOW - timedelta(hours=1), positions=_store(tmp_path))  # type: ignore[arg-type]
    await first.poll_once()
    feed.changes.append(Change("006W", NOW - timedelta(minutes=1)))
    restarted = CrmPoller(feed, bus, positions=_store(tmp_path))  # type: ignore[arg-type]
    await restarted.poll_once()
    assert [(e.entity_id, e.status) for e in bus.events] == [
        ("006W", Status.OK),
        ("006W", Status.DUPLICATE),
    ]


class SaleFeed:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, datetime]] = []

    async def sale_changes(self, since: datetime) -> list[tuple[Any, datetime]]:
        return [r for r in self.rows if r[1] >= since]


async def test_the_sale_state_poller_keeps_its_last_states_across_a_restart(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from adapters.flows._sale_states import SaleStatePoller

    feed, bus = SaleFeed(), FlakyBus()
    sale = SimpleNamespace(id=7, number="SO7", reference="006B", state="done")
    feed.rows = [(sale, NOW - timedelta(minutes=2))]
    first = SaleStatePoller(feed, bus, since=NOW - timedelta(hours=1), positions=_store(tmp_path))  # type: ignore[arg-type]
    assert [e.payload["erp_state"] for e in await first.poll_once()] == ["done"]

    # Tryton rewrites the sale (a new write_date) without a new state; after a restart
    # that rewrite is not news. A genuinely new state still is.
    feed.rows.append((sale, NOW - timedelta(minutes=1)))
    restarted = SaleStatePoller(feed, bus, positions=_store(tmp_path))  # type: ignore[arg-type]
    assert await restarted.poll_once() == []
    moved = SimpleNamespace(id=7, number="SO7", reference="006B", state="cancelled")
    feed.rows.append((moved, NOW))
    assert [e.payload["erp_state"] for e in await restarted.poll_once()] == ["cancelled"]
    assert [e.payload["erp_state"] for e in bus.events] == ["done", "cancelled"]
    stored = json.loads((tmp_path / "lineage.duckdb.positions.json").read_text())
    assert stored["erp.sale_states.states"] == {"items": {"7": "cancelled"}}
