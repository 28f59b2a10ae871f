"""The whole control API as ``interlock up`` assembles it (the one builder with the
shipped plug-ins: SLA, replay and explore routes over one in-memory lineage, role
tokens), served from a thread with its own event loop, seeded with recent traffic."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _hosts import serve
from _sample import Chain

from collector import Role
from collector.host import InterlockThread
from tracing import ErrorInfo, Event, Reason, Status, System

#: token -> (name, role); "exec" is a viewer who uses the executive view.
TOKENS: dict[str, tuple[str, Role]] = {
    "tok-viewer": ("vic", Role.VIEWER),
    "tok-exec": ("erin", Role.VIEWER),
    "tok-operator": ("olga", Role.OPERATOR),
    "tok-approver": ("anna", Role.APPROVER),
    "tok-admin": ("ada", Role.ADMIN),
}

#: Transactions the seed makes: six completed ones, one dead-lettered at the ERP.
COMPLETED = [f"cid-ok-{i:03d}" for i in range(6)]
DEAD = "cid-dl-900"


def seed_events(now: datetime) -> list[Event]:
    """Recent quote-to-cash traffic: billing answers one 429 per order (then the retry
    succeeds 2 s later), and one order dead-letters at the ERP after two 503s."""
    crm, erp, billing, support, il = (
        System.CRM,
        System.ERP,
        System.BILLING,
        System.SUPPORT,
        System.INTERLOCK,
    )
    limited = ErrorInfo(
        reason=Reason.RATE_LIMIT, message="429 Too Many Requests", retriable=True, status_code=429
    )
    down = ErrorInfo(
        reason=Reason.DOWNSTREAM_UNAVAILABLE,
        message="ERP answered 503",
        retriable=True,
        status_code=503,
    )
    events: list[Event] = []
    for i, cid in enumerate(COMPLETED):
        c = Chain(cid, f"001C{i}", f"{1000 + 250 * i}.00", now - timedelta(minutes=40 - i))
        won = c.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
        c.add(0.6, il, erp, "order.created", "erp.create_order")
        c.add(0.4, il, billing, "subscription.created", "billing.create_subscription",
              status=Status.RETRYING, error=limited)  # fmt: skip
        c.add(2, il, billing, "subscription.created", "billing.create_subscription", attempt=2)
        c.add(5, il, erp, "invoice.posted", "erp.post_invoice")
        c.add(1, il, support, "case.enriched", "support.enrich_case", cause=won)
        events += c.events
    d = Chain(DEAD, "001D9", "98000.00", now - timedelta(minutes=20))
    d.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    d.add(1, il, erp, "order.created", "erp.create_order", status=Status.RETRYING, error=down)
    d.add(2, il, erp, "order.created", "erp.create_order", status=Status.RETRYING, error=down,
          attempt=2)  # fmt: skip
    d.add(4, il, erp, "order.created", "erp.create_order", status=Status.DEAD_LETTERED,
          attempt=3, error=down)  # fmt: skip
    return events + d.events


class StackApi:
    """``StackApi().start()`` serves the seeded API at ``url``; ``stop()`` ends it."""

    def __init__(self, extra_events: list[Event] | None = None) -> None:
        #: Events seeded besides ``seed_events`` (a test's own scenario).
        self.extra_events = list(extra_events or [])
        self.now = datetime.now(UTC)
        self.url = ""
        self._workdir = tempfile.TemporaryDirectory(prefix="stack-api-")
        self._thread: InterlockThread | None = None

    def start(self) -> StackApi:
        self._thread = serve(
            seed_events(self.now) + self.extra_events,
            TOKENS,
            workdir=Path(self._workdir.name),
            replay={"outcome_timeout": 2.0},
        )
        self.url = self._thread.url
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        self._workdir.cleanup()
