"""The customer watcher loses no customer: a sync that fails is retried the next round,
and a system that is down ends the round with every customer not reached still waiting."""

from __future__ import annotations

import logging
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.customers import CustomerWatcher
from tracing import DownstreamUnavailable, ValidationError


class _Master:
    """The two things the watcher uses: the systems' change feeds and ``sync``."""

    def __init__(self, changed: list[str]) -> None:
        self.changed = changed
        self.failures: dict[str, Exception] = {}
        self.synced: list[str] = []

        async def feed(since: datetime) -> list[str]:
            out, self.changed = self.changed, []
            return out

        async def nothing(since: datetime) -> list[str]:
            return []

        billing = SimpleNamespace(list_events=lambda **_: _empty())
        self.systems = SimpleNamespace(
            crm=SimpleNamespace(account_changes=feed),
            erp=SimpleNamespace(party_changes=nothing),
            billing=billing,
            support=SimpleNamespace(organization_changes=nothing),
        )

    async def sync(self, customer_id: str) -> dict[str, Any]:
        failure = self.failures.pop(customer_id, None)
        if failure is not None:
            raise failure
        self.synced.append(customer_id)
        return {}


async def _empty() -> list[dict[str, Any]]:
    return []


@pytest.mark.asyncio
async def test_a_down_system_ends_the_round_and_every_customer_not_reached_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    master = _Master(["A", "B", "C", "D"])
    master.failures["B"] = DownstreamUnavailable("HTTP 503 from POST /erp/rpc/", system="erp")
    watcher = CustomerWatcher(master, interval=1)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="adapters.customers._watcher"):
        assert await watcher.poll_once() == ["A"]
    assert watcher.pending == {"B", "C", "D"}
    assert len(caplog.records) == 1 and "3 wait for the next round" in caplog.text
    # The feeds report nothing new, yet the waiting customers are synced.
    assert await watcher.poll_once() == ["B", "C", "D"]
    assert watcher.pending == set()
    assert master.synced == ["A", "B", "C", "D"]


@pytest.mark.asyncio
async def test_one_bad_customer_does_not_stop_the_others_and_is_retried() -> None:
    master = _Master(["A", "B", "C"])
    master.failures["B"] = ValidationError("party 16 has no name", system="erp")
    watcher = CustomerWatcher(master, interval=1)  # type: ignore[arg-type]
    assert await watcher.poll_once() == ["A", "C"]
    assert watcher.pending == {"B"} and watcher.errors == 1
    assert await watcher.poll_once() == ["B"]
    assert watcher.pending == set()
