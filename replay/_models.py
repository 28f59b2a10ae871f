"""Value objects of replay: what to select, how to correct, what a dry run shows.

Money travels as strings (``"1250.00"``) with a separate currency, as in the
rest of the control API.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.lineage import DeadLetterState
from tracing import Reason, SystemName

__all__ = [
    "REPLAYABLE_STATES",
    "Corrections",
    "DeadLetterState",
    "ItemState",
    "PlanItem",
    "ReplayPlan",
    "ReplayState",
    "Selection",
    "is_money_step",
]

#: Entity prefixes of kinds that move money (orders, invoices, payments, credit memos):
#: a safety net for a step no installed flow declares.
_MONEY_KIND_PREFIXES = ("order.", "invoice.", "payment.", "credit_memo.", "subscription.")


def is_money_step(step: str, kind: str, money_steps: Collection[str] = ()) -> bool:
    """Whether redoing this step can create, change or move money: the flows declare
    their money steps (``FlowSpec.money_steps``); a kind of a money entity counts too."""
    return step in money_steps or kind.startswith(_MONEY_KIND_PREFIXES)


class ReplayState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ItemState(StrEnum):
    PENDING = "pending"
    SKIPPED = "skipped"
    DELIVERED = "delivered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"


#: Dead letters a replay may pick up: not yet resolved or ignored.
REPLAYABLE_STATES = (
    DeadLetterState.OPEN,
    DeadLetterState.REPLAY_REQUESTED,
    DeadLetterState.REPLAYING,
)


class Selection(BaseModel):
    """Which dead letters: one event, one transaction, a group, or a filter.

    Criteria combine with AND. ``group`` is a group ID from the grouped view
    (``"<reason>:<step>"``); ``sla_rule`` picks the steps that rule measures.
    ``states`` defaults to every state a replay may pick up.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str | None = None
    correlation_id: str | None = None
    group: str | None = None
    reason: Reason | None = None
    target: SystemName | None = None
    step: str | None = None
    since: datetime | None = Field(None, description="first failure at or after")
    until: datetime | None = Field(None, description="first failure before")
    sla_rule: str | None = None
    states: tuple[DeadLetterState, ...] = REPLAYABLE_STATES
    limit: int = Field(10_000, ge=1, le=100_000)

    @field_validator("group")
    @classmethod
    def _group_shape(cls, value: str | None) -> str | None:
        if value is not None:
            reason, sep, step = value.partition(":")
            if not sep or not step:
                raise ValueError("group must look like '<reason>:<step>'")
            Reason(reason)  # raises ValueError naming the bad reason
        return value

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("times must carry a time zone")
        return value

    def has_criteria(self) -> bool:
        """Whether anything narrows the selection (a replay of everything is refused)."""
        return any(
            (
                self.event_id,
                self.correlation_id,
                self.group,
                self.reason,
                self.target,
                self.step,
                self.since,
                self.until,
                self.sla_rule,
            )
        )

    def describe(self) -> dict[str, Any]:
        """The criteria that are set, for the audit trail."""
        return self.model_dump(mode="json", exclude_defaults=True)


class Corrections(BaseModel):
    """Operator edits applied to the input event before it is re-published.

    ``sku_map`` renames product codes in the order's lines (a missing product
    mapping); ``payment_terms`` and ``currency`` replace the order's; ``patch`` is
    a JSON merge patch (RFC 7386) onto the stored payload. The flow applies the
    first three to the order it loads (they travel in ``payload["corrections"]``);
    every canonical object in the corrected payload must still validate.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku_map: dict[str, str] = Field(default_factory=dict)
    payment_terms: str | None = Field(None, min_length=1)
    currency: str | None = None
    patch: dict[str, Any] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 3 or not value.isalpha()):
            raise ValueError(f"currency must be an ISO 4217 code, got {value!r}")
        return value.upper() if value else value

    @field_validator("sku_map")
    @classmethod
    def _non_empty(cls, value: dict[str, str]) -> dict[str, str]:
        for old, new in value.items():
            if not old.strip() or not new.strip():
                raise ValueError("sku_map keys and values must be non-empty product codes")
        return value

    def __bool__(self) -> bool:
        return bool(self.sku_map or self.patch or self.payment_terms or self.currency)


class PlanItem(BaseModel):
    """One dead letter in a dry run: what would be re-delivered, where, under which key."""

    model_config = ConfigDict(frozen=True)

    dead_letter_id: str
    correlation_id: str
    step: str
    kind: str
    target: str | None
    reason: str
    state: str
    amount: Decimal | None
    currency: str | None
    input_event_id: str | None
    input_kind: str | None
    idempotency_key: str | None
    action: Literal["deliver", "skip"]
    skip_reason: str | None = None
    #: The probe's answer: True the target holds the effect, False not, None unknown.
    target_holds: bool | None = None
    money: bool = False
    diff: list[dict[str, Any]] = Field(default_factory=list)


class ReplayPlan(BaseModel):
    """The dry-run result: every item, totals, and whether four eyes are needed."""

    model_config = ConfigDict(frozen=True)

    selection: dict[str, Any]
    items: list[PlanItem]
    total: int
    to_deliver: int
    skipped: int
    needs_approval: bool
    value_by_currency: dict[str, Decimal]
    targets: dict[str, int]
