"""Response models of the replay control API (the OpenAPI contract).

Money is a decimal string, times ISO 8601. ``extra="allow"``: the models name the
fields clients rely on; the contract test (schemathesis) holds each to its type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuditEntry",
    "AuditPage",
    "AuditVerdict",
    "DeadLetterGroup",
    "DeadLetterGroupPage",
    "DeadLetterRecord",
    "PlanAnswer",
    "ReplayAnswer",
    "ReplayPage",
    "ReplayRecord",
    "WhoAmI",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class WhoAmI(_Out):
    name: str
    role: str = Field(description="viewer, operator, approver or admin")


class DeadLetterGroup(_Out):
    group_id: str
    label: str
    reason: str | None
    step: str | None
    target: str | None
    count: int
    transactions: int
    value_by_currency: dict[str, str]
    first_failed_at: str | None
    last_failed_at: str | None


class DeadLetterGroupPage(_Out):
    items: list[DeadLetterGroup]
    total: int


class DeadLetterRecord(_Out):
    event_id: str
    correlation_id: str
    step: str | None
    target: str | None
    reason: str | None
    state: str
    amount: str | None
    currency: str | None


class ReplayRecord(_Out):
    replay_id: str
    state: str


class ReplayPage(_Out):
    items: list[ReplayRecord]
    total: int


class PlanAnswer(_Out):
    """``POST /api/v1/replays`` with ``dry_run`` true (200): the plan."""

    dry_run: bool
    selection: dict[str, Any]
    items: list[dict[str, Any]]
    total: int
    to_deliver: int
    skipped: int
    needs_approval: bool
    value_by_currency: dict[str, str]
    targets: dict[str, int]


class ReplayAnswer(ReplayRecord):
    """``POST /api/v1/replays`` with ``dry_run`` false (202): the recorded replay."""

    dry_run: bool


class AuditEntry(_Out):
    seq: int
    at: str
    actor: str
    role: str | None
    action: str
    subject: str | None
    outcome: str | None
    hash: str
    prev_hash: str | None


class AuditPage(_Out):
    items: list[AuditEntry]
    total: int


class AuditVerdict(_Out):
    ok: bool
    entries: int
    problems: list[Any]
    warnings: list[Any]
