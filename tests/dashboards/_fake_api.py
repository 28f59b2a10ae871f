"""A fake of the collector's control API, faithful to its contract, for page tests.

It serves a fixed ``Dataset`` (built from real ``tracing.Event`` envelopes, so field
names and types are the envelope's own) over the same paths, query parameters, list
shape ``{"items", "total"}``, error shape ``{"detail"}`` and status codes as the real
collector. ``serve(app)`` runs it with uvicorn on a free loopback port in a thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from tracing import ErrorInfo, Event, Reason, Status, System

STATES = ("in_progress", "completed", "failed", "dead_lettered", "stalled")
T0 = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


@dataclass
class Dataset:
    """What the fake collector holds: transactions (summary + events) and dead letters."""

    transactions: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    duplicates_dropped: int = 0
    bus_backlog: int = 0
    #: The envelopes behind ``transactions``, to seed a real collector with the same data.
    events: list[Event] = field(default_factory=list)
    #: When set, reads need ``Authorization: Bearer <read_token>`` (401 otherwise).
    read_token: str | None = None

    def stats(self) -> dict[str, Any]:
        events = [e for t in self.transactions for e in t["events"]]
        by_state = dict.fromkeys(STATES, 0)
        value_by_state = {s: Decimal("0.00") for s in STATES}
        for t in self.transactions:
            by_state[t["state"]] += 1
            value_by_state[t["state"]] += Decimal(t["amount"] or "0")
        by_system: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for e in events:
            by_system[e["source"]] = by_system.get(e["source"], 0) + 1
            by_status[e["status"]] = by_status.get(e["status"], 0) + 1
        return {
            "events_total": len(events),
            "transactions_total": len(self.transactions),
            "transactions_by_state": by_state,
            "dead_letters_open": sum(1 for d in self.dead_letters if d["state"] == "open"),
            "duplicates_dropped": self.duplicates_dropped,
            "events_by_system": by_system,
            "events_by_status": by_status,
            "value_by_state": {s: f"{v:.2f}" for s, v in value_by_state.items()},
            "bus_backlog": self.bus_backlog,
            "last_event_at": max((e["event_time"] for e in events), default=None),
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _transaction(
    *,
    cid: str,
    order_ref: str | None,
    customer_id: str,
    customer_name: str,
    amount: str,
    currency: str,
    state: str,
    events: list[Event],
) -> dict[str, Any]:
    """A transaction as the API answers it: summary fields plus events with since_cause_ms."""
    by_id = {e.event_id: e for e in events}
    dumped = []
    for event in sorted(events, key=lambda e: (e.event_time, e.event_id)):
        body = event.model_dump(mode="json", exclude={"correlation_id", "schema_version"})
        body["event_time"] = _iso(event.event_time)
        body["recorded_at"] = _iso(event.recorded_at)
        cause = by_id.get(event.causation_id or "")
        body["since_cause_ms"] = (
            (event.event_time - cause.event_time).total_seconds() * 1000 if cause else None
        )
        dumped.append(body)
    last = dumped[-1]
    return {
        "correlation_id": cid,
        "order_ref": order_ref,
        "customer_id": customer_id,
        "customer_name": customer_name,
        "amount": amount,
        "currency": currency,
        "state": state,
        "started_at": dumped[0]["event_time"],
        "updated_at": last["event_time"],
        "last_kind": last["kind"],
        "last_system": last["source"],
        "last_status": last["status"],
        "event_count": len(dumped),
        "failed_count": sum(1 for e in dumped if e["status"] == "failed"),
        "dead_letter_count": sum(1 for e in dumped if e["status"] == "dead_lettered"),
        "waiting_step": None,
        "waiting_since": None,
        "due_at": None,
        "events": dumped,
    }


class _Chain:
    """Builds one transaction's events, each caused by the previous one unless told."""

    def __init__(self, cid: str, customer_id: str, amount: str, start: datetime) -> None:
        self.cid, self.customer_id, self.amount = cid, customer_id, Decimal(amount)
        self.now = start
        self.events: list[Event] = []
        self.n = 0

    def add(
        self,
        after_s: float,
        source: System,
        target: System | None,
        kind: str,
        step: str,
        *,
        status: Status = Status.OK,
        attempt: int = 1,
        error: ErrorInfo | None = None,
        cause: Event | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Event:
        self.now += timedelta(seconds=after_s)
        self.n += 1
        parent = cause or (self.events[-1] if self.events else None)
        event = Event(
            event_id=f"{self.cid}-e{self.n:02d}",
            correlation_id=self.cid,
            causation_id=parent.event_id if parent else None,
            trace_id=f"{self.n:032x}",
            span_id=f"{self.n:016x}",
            idempotency_key=f"{self.cid}:{step}:{attempt}",
            source=source,
            target=target,
            kind=kind,
            step=step,
            entity_type=kind.split(".")[0],
            entity_id=f"{kind.split('.')[0]}-{self.cid[-3:]}",
            status=status,
            attempt=attempt,
            event_time=self.now,
            recorded_at=self.now + timedelta(milliseconds=40),
            duration_ms=120.0,
            amount=self.amount,
            currency="EUR",
            customer_id=self.customer_id,
            payload=payload or {"email": "j***@example.com", "amount": str(self.amount)},
            error=error,
        )
        self.events.append(event)
        return event


def sample_dataset() -> Dataset:
    """Three transactions: one completed across all systems, one dead-lettered at the ERP
    after a retry, one in progress; plus the open dead letter of the second."""
    crm, erp, billing, support, il = (
        System.CRM,
        System.ERP,
        System.BILLING,
        System.SUPPORT,
        System.INTERLOCK,
    )

    done = _Chain("cid-done-001", "C-100", "1250.00", T0)
    won = done.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    done.add(0.8, il, erp, "order.created", "erp.create_order")
    done.add(30, erp, il, "invoice.posted", "erp.post_invoice")
    done.add(2, il, billing, "subscription.created", "billing.create_subscription")
    done.add(3600, billing, il, "invoice.paid", "billing.invoice_paid")
    done.add(1, il, support, "case.enriched", "support.enrich_case", cause=won)

    dead = _Chain("cid-dead-002", "C-200", "98000.00", T0 + timedelta(minutes=5))
    dead.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    down = ErrorInfo(
        reason=Reason.DOWNSTREAM_UNAVAILABLE,
        message="ERP answered 503",
        retriable=True,
        status_code=503,
        error_type="DownstreamUnavailable",
    )
    hold = ErrorInfo(
        reason=Reason.CONFLICT,
        message="credit limit exceeded",
        retriable=False,
        status_code=200,
        error_type="ConflictError",
    )
    dead.add(1, il, erp, "order.created", "erp.create_order", status=Status.RETRYING, error=down)
    dead.add(
        4, il, erp, "order.created", "erp.create_order", status=Status.FAILED, attempt=2, error=hold
    )
    last = dead.add(
        0.1,
        il,
        il,
        "order.dead_lettered",
        "erp.create_order",
        status=Status.DEAD_LETTERED,
        attempt=2,
        error=hold,
    )

    open_ = _Chain("cid-open-003", "C-300", "430.50", T0 + timedelta(minutes=9))
    open_.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    open_.add(0.5, il, erp, "order.created", "erp.create_order")

    transactions = [
        _transaction(
            cid="cid-open-003",
            order_ref="SO-0003",
            customer_id="C-300",
            customer_name="Initech SA",
            amount="430.50",
            currency="EUR",
            state="in_progress",
            events=open_.events,
        ),
        _transaction(
            cid="cid-dead-002",
            order_ref=None,
            customer_id="C-200",
            customer_name="Globex Ltd",
            amount="98000.00",
            currency="EUR",
            state="dead_lettered",
            events=dead.events,
        ),
        _transaction(
            cid="cid-done-001",
            order_ref="SO-0001",
            customer_id="C-100",
            customer_name="Acme GmbH",
            amount="1250.00",
            currency="EUR",
            state="completed",
            events=done.events,
        ),
    ]
    dead_letter = {
        "event_id": last.event_id,
        "correlation_id": "cid-dead-002",
        "step": "erp.create_order",
        "kind": "order.created",
        "target": "erp",
        "reason": "conflict",
        "error_message": "credit limit exceeded",
        "attempts": 2,
        "amount": "98000.00",
        "currency": "EUR",
        "customer_id": "C-200",
        "first_failed_at": _iso(last.event_time - timedelta(seconds=4)),
        "last_failed_at": _iso(last.event_time),
        "state": "open",
        "state_changed_at": _iso(last.event_time),
        "state_changed_by": None,
        "state_note": None,
        "resolved_by_event": None,
    }
    return Dataset(
        transactions=transactions,
        dead_letters=[dead_letter],
        duplicates_dropped=1,
        bus_backlog=2,
        events=[*done.events, *dead.events, *open_.events],
    )


def _matches(t: dict[str, Any], q: str) -> bool:
    needle = q.lower()
    fields = [t["correlation_id"], t["order_ref"], t["customer_id"], t["customer_name"]]
    fields += [e["entity_id"] for e in t["events"]]
    return any(needle in str(f).lower() for f in fields if f)


def _page(items: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    return {"items": items[offset : offset + limit], "total": len(items)}


def build_app(data: Dataset) -> FastAPI:
    """The fake control API over ``data``."""
    app = FastAPI(title="fake Interlock control API")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # As the collector: one readable string, 422.
        parts = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    def denied(authorization: str | None) -> JSONResponse | None:
        if data.read_token and authorization != f"Bearer {data.read_token}":
            return JSONResponse({"detail": "missing or unknown token"}, status_code=401)
        return None

    @app.get("/api/v1/systems")
    def systems() -> dict[str, Any]:
        # What the shipped plug-ins declare (the real host serves the same).
        from _hosts import SYSTEMS

        return {"systems": [s.as_dict() for s in sorted(SYSTEMS, key=lambda s: s.lane)]}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "checks": {"lineage": "ok", "bus": "ok"}}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        total = data.stats()["events_total"]
        return (
            "# HELP interlock_events_total Events stored.\n"
            "# TYPE interlock_events_total counter\n"
            f"interlock_events_total {total}\n"
        )

    @app.get("/api/v1/stats", response_model=None)
    def stats(authorization: str | None = Header(None)) -> Any:
        return denied(authorization) or data.stats()

    @app.get("/api/v1/transactions", response_model=None)
    def transactions(
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0),
        state: str | None = None,
        q: str | None = None,
        authorization: str | None = Header(None),
    ) -> Any:
        if refusal := denied(authorization):
            return refusal
        if state and state not in STATES:
            return JSONResponse(
                {"detail": f"state: must be one of {', '.join(STATES)}"}, status_code=422
            )
        found = [
            t
            for t in data.transactions
            if (not state or t["state"] == state) and (not q or _matches(t, q))
        ]
        # Newest first: most recently updated, as the collector orders them.
        found.sort(key=lambda t: (t["updated_at"], t["correlation_id"]), reverse=True)
        items = [{k: v for k, v in t.items() if k != "events"} for t in found]
        return _page(items, limit, offset)

    @app.get("/api/v1/transactions/{correlation_id}", response_model=None)
    def transaction(correlation_id: str, authorization: str | None = Header(None)) -> Any:
        if refusal := denied(authorization):
            return refusal
        for t in data.transactions:
            if t["correlation_id"] == correlation_id:
                return t
        return JSONResponse({"detail": f"no transaction {correlation_id}"}, status_code=404)

    @app.get("/api/v1/dead-letters", response_model=None)
    def dead_letters(
        state: str | None = "open",
        reason: str | None = None,
        step: str | None = None,
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0),
        authorization: str | None = Header(None),
    ) -> Any:
        if refusal := denied(authorization):
            return refusal
        items = [
            d
            for d in data.dead_letters
            if (not state or d["state"] == state)
            and (not reason or d["reason"] == reason)
            and (not step or d["step"] == step)
        ]
        return _page(items, limit, offset)

    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` on a free 127.0.0.1 port in a thread; yield its base URL; stop it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fake control API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bound then released), for the unreachable state."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
