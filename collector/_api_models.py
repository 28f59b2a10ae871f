"""Response models of the collector's own control-API endpoints (the OpenAPI contract).

They document what the lineage queries answer; money is a decimal string, times are
ISO 8601. ``extra="allow"``: a field added to a query shows up before its model lists
it, and the contract test (schemathesis) holds every listed field to its type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AdapterFigures",
    "DeadLetterPage",
    "DeadLetterSummary",
    "ErrorDetail",
    "Health",
    "LineageEvent",
    "Stats",
    "SystemOut",
    "Systems",
    "Throughput",
    "TransactionDetail",
    "TransactionPage",
    "TransactionSummary",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Health(_Out):
    status: str = Field(description="ok when every check is ok, else degraded")
    checks: dict[str, str]


class Stats(_Out):
    events_total: int
    transactions_total: int
    transactions_by_state: dict[str, int]
    dead_letters_open: int
    duplicates_dropped: int
    events_by_system: dict[str, int]
    events_by_status: dict[str, int]
    value_by_state: dict[str, str] = Field(description="decimal strings by state")
    bus_backlog: int
    last_event_at: str | None


class TransactionSummary(_Out):
    correlation_id: str
    order_ref: str | None
    customer_id: str | None
    customer_name: str | None
    amount: str | None
    currency: str | None
    state: str
    started_at: str | None
    updated_at: str | None
    last_kind: str | None
    last_system: str | None
    last_status: str | None
    event_count: int
    failed_count: int
    dead_letter_count: int


class TransactionPage(_Out):
    items: list[TransactionSummary]
    total: int


class ErrorDetail(_Out):
    reason: str
    message: str
    retriable: bool | None = None
    status_code: int | None = None


class LineageEvent(_Out):
    event_id: str
    correlation_id: str
    causation_id: str | None
    trace_id: str | None
    span_id: str | None
    source: str | None
    target: str | None
    kind: str
    step: str | None
    status: str
    attempt: int
    event_time: str
    recorded_at: str | None
    amount: str | None
    currency: str | None
    customer_id: str | None
    payload: dict[str, Any] | None
    error: ErrorDetail | None
    since_cause_ms: float | None


class TransactionDetail(TransactionSummary):
    events: list[LineageEvent]


class DeadLetterSummary(_Out):
    event_id: str
    correlation_id: str
    step: str | None
    kind: str | None
    target: str | None
    reason: str | None
    error_message: str | None
    attempts: int | None
    amount: str | None
    currency: str | None
    customer_id: str | None
    first_failed_at: str | None
    last_failed_at: str | None
    state: str
    state_changed_at: str | None
    state_changed_by: str | None
    state_note: str | None
    resolved_by_event: str | None


class DeadLetterPage(_Out):
    items: list[DeadLetterSummary]
    total: int
    next_cursor: str | None = Field(
        None, description="pass as cursor for the page after this one; null on the last"
    )


class LatencyFigures(_Out):
    p50: float | None
    p95: float | None
    p99: float | None


class SystemFigures(_Out):
    system: str
    calls: int
    errors: int
    error_rate: float | None
    errors_by_reason: dict[str, int]
    latency_ms: LatencyFigures
    rate_limited: int
    wait_after_429_ms: float | None
    inbound: int
    last_success_at: str | None
    last_call_at: str | None
    consecutive_failures: int
    circuit: str
    dead_letters_open: int
    retrying_now: int
    calls_per_minute: float | None


class AdapterFigures(_Out):
    window_start: str
    window_end: str
    window_minutes: float
    circuit_note: str
    systems: list[SystemFigures]


class ThroughputPoint(_Out):
    at: str
    status: str
    events: int


class Throughput(_Out):
    window_start: str
    window_end: str
    bucket_seconds: float
    points: list[ThroughputPoint]


class SystemOut(_Out):
    name: str = Field(description="the system's name in the lineage (source and target)")
    label: str
    vendor: str
    lane: int = Field(description="its place in the transaction explorer, lowest leftmost")


class Systems(_Out):
    systems: list[SystemOut] = Field(description="in lane order")
