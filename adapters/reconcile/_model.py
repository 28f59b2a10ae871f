"""What a reconciliation finds: periods, discrepancy classes and repairs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from tracing import ValidationError

__all__ = [
    "PERIODS",
    "Check",
    "Discrepancy",
    "Kind",
    "Period",
    "Repair",
    "discrepancy_id",
    "period_for",
]


class Check(StrEnum):
    """What is compared with what."""

    DEAL_TO_SALE = "deal_to_erp_sale"
    DEAL_TO_SUBSCRIPTION = "deal_to_subscription"
    DEAL_TO_ENTITLEMENT = "deal_to_entitlement"
    PAID_INVOICE_TO_ERP = "paid_invoice_to_erp_invoice"
    CUSTOMER_CROSS_REFERENCE = "customer_cross_reference"


class Kind(StrEnum):
    """The class of a discrepancy."""

    MISSING = "missing"
    DUPLICATE = "duplicate"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    STATE_MISMATCH = "state_mismatch"
    ORPHAN = "orphan"


class Repair(StrEnum):
    """How a discrepancy is put right.

    ``replay``: Interlock saw the transaction; replay the step (replay's guards apply).
    ``resync``: Interlock never saw it; re-read it from the owning system.
    ``explain``: only a person can tell (a record keyed by hand); mark it explained.
    """

    REPLAY = "replay"
    RESYNC = "resync"
    EXPLAIN = "explain"


class Discrepancy(BaseModel):
    """One thing the systems disagree on, with the money it puts at risk."""

    model_config = ConfigDict(frozen=True)

    #: Stable across runs: the same disagreement has the same ID in the next run.
    discrepancy_id: str
    check: Check
    kind: Kind
    #: The system whose record is missing, doubled, different or orphaned.
    system: str
    #: The record the check is about: the order (opportunity ID), the billing invoice
    #: ID, or the customer ID.
    key: str
    correlation_id: str | None = None
    customer_id: str | None = None
    customer_name: str | None = None
    value_at_risk: Decimal = Decimal(0)
    currency: str | None = None
    expected: str | None = None
    found: str | None = None
    detail: str
    repair: Repair
    #: Whether the lineage holds the transaction (``False``: Interlock never saw it).
    seen_by_interlock: bool = False


def discrepancy_id(check: Check, kind: Kind, system: str, key: str) -> str:
    raw = f"{check.value}\x00{kind.value}\x00{system}\x00{key}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


PERIODS = ("day", "week", "month", "custom")


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC; deals count by close date, invoices by creation."""

    name: str
    start: datetime
    end: datetime

    @property
    def dates(self) -> tuple[date, date]:
        """The close dates the period covers: ``[first, after last)``."""
        first = self.start.date()
        last = (self.end - timedelta(microseconds=1)).date()
        return first, last + timedelta(days=1)

    @property
    def label(self) -> str:
        return f"{self.name} {self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


def period_for(
    name: str,
    *,
    now: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Period:
    """The last day, week or month up to the end of today (UTC), or ``custom`` from
    ``start`` to ``end``."""
    if name not in PERIODS:
        raise ValidationError(
            f"unknown period {name!r}; expected one of {', '.join(PERIODS)}", field="period"
        )
    if name == "custom":
        if start is None or end is None:
            raise ValidationError("a custom period needs from and to", field="from")
        start, end = _utc(start), _utc(end)
        if end <= start:
            raise ValidationError("the period's end must be after its start", field="to")
        if end - start > timedelta(days=400):
            raise ValidationError("a period covers at most 400 days", field="to")
        return Period(name, start, end)
    if start is not None or end is not None:
        raise ValidationError(f"from and to need period custom, not {name}", field="period")
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    end_of_today = datetime.combine(today + timedelta(days=1), time(), UTC)
    days = {"day": 1, "week": 7, "month": 30}[name]
    return Period(name, end_of_today - timedelta(days=days), end_of_today)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValidationError("from and to need a time zone (…Z or +00:00)", field="from")
    return value.astimezone(UTC)
