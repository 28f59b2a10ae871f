"""The desk's incremental ticket export, polled from a stored position into ``ticket.changed``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from adapters import PositionStore
from adapters.sandbox.zendesk import ZendeskSandbox
from adapters.support import TicketPoller, ZendeskAdapter
from tracing import Event


class ListBus:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)


def _poller(adapter: ZendeskAdapter, bus: ListBus, store: PositionStore, tag: str) -> TicketPoller:
    return TicketPoller(
        adapter,
        bus,  # type: ignore[arg-type]
        select=lambda t: tag in (t.get("tags") or []),
        correlate=lambda t: f"ticket-{t['id']}",
        since=datetime.now(UTC) - timedelta(minutes=1),
        positions=store,
    )


async def test_ticket_changes_are_published_once_and_resume_after_a_restart(
    adapter: ZendeskAdapter, zd_sandbox: ZendeskSandbox, tmp_path: Path
) -> None:
    tag = f"dispute_{uuid.uuid4().hex[:8]}"
    path = tmp_path / "lineage.duckdb.positions.json"
    http = httpx.AsyncClient(
        base_url=zd_sandbox.url, auth=(f"{zd_sandbox.email}/token", zd_sandbox.api_token)
    )

    async def create(tags: list[str]) -> dict[str, Any]:
        body = {
            "ticket": {"subject": "Invoice INV-1 is wrong", "comment": {"body": "x"}, "tags": tags}
        }
        response = await http.post("/api/v2/tickets.json", json=body)
        response.raise_for_status()
        ticket: dict[str, Any] = response.json()["ticket"]
        return ticket

    async with http:
        disputed = await create([tag])
        await create(["other"])
        bus = ListBus()
        first = _poller(adapter, bus, PositionStore(path).load(), tag)
        [event] = await first.poll_once()
        assert (event.kind, event.step, event.entity_id) == (
            "ticket.changed",
            "support.ticket.changed",
            str(disputed["id"]),
        )
        assert event.correlation_id == f"ticket-{disputed['id']}" and tag in event.payload["tags"]
        assert await first.poll_once() == []  # the overlap's re-read is recognised

        # A restart resumes at the stored position: nothing read twice, a new change is news,
        # even within the same second as the last one.
        restarted = _poller(adapter, bus, PositionStore(path).load(), tag)
        assert await restarted.poll_once() == []
        put = await http.put(
            f"/api/v2/tickets/{disputed['id']}.json", json={"ticket": {"status": "open"}}
        )
        put.raise_for_status()
        [changed] = await restarted.poll_once()
        assert changed.payload["status"] == "open"
    assert [e.entity_id for e in bus.events] == [str(disputed["id"])] * 2
    assert len({e.idempotency_key for e in bus.events}) == 2
