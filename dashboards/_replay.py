"""How the replay pages word a dry run and a replay (pure, unit-tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._format import format_money, format_time

__all__ = [
    "PLAN_COLUMNS",
    "REPLAY_COLUMNS",
    "newest_first",
    "plan_rows",
    "plan_text",
    "replay_rows",
]

#: A dry run's items as the page shows them: header -> API field.
PLAN_COLUMNS = {
    "dead letter": "dead_letter_id",
    "target": "target",
    "action": "action",
    "why skipped": "skip_reason",
    "idempotency key": "idempotency_key",
}
REPLAY_COLUMNS = ("replay_id", "state", "requested_by", "decided_by", "total", "skipped",
                  "delivered", "succeeded", "failed")  # fmt: skip


def plan_text(plan: Mapping[str, Any]) -> str:
    """``"Dry run: 8 to re-deliver (erp 8), 0 skipped; needs a second person's approval
    (it moves money). Nothing was sent."``

    >>> plan_text({"to_deliver": 8, "skipped": 1, "targets": {"erp": 8},
    ...            "needs_approval": True})  # doctest: +NORMALIZE_WHITESPACE
    "Dry run: 8 to re-deliver (erp 8), 1 skipped; needs a second person's approval.
    Nothing was sent."
    """
    targets = plan.get("targets") or {}
    where = ", ".join(f"{t} {n}" for t, n in sorted(targets.items()))
    approval = (
        "needs a second person's approval" if plan.get("needs_approval") else "no approval needed"
    )
    return (
        f"Dry run: {plan.get('to_deliver', 0)} to re-deliver"
        + (f" ({where})" if where else "")
        + f", {plan.get('skipped', 0)} skipped; {approval}. Nothing was sent."
    )


def plan_rows(items: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A dry run's items with readable headers; an item that is delivered has no skip
    reason (``—``), and the amount carries its currency."""
    rows = []
    for item in items:
        row = {header: str(item.get(field) or "—") for header, field in PLAN_COLUMNS.items()}
        row["amount"] = format_money(item.get("amount"), item.get("currency"))
        rows.append(row)
    return rows


def newest_first(replays: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Replays, the most recently requested first (the API's order, made sure of)."""
    return sorted(replays, key=lambda r: str(r.get("requested_at") or ""), reverse=True)


def replay_rows(replays: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The replays table: an undecided replay says so instead of ``None``."""
    rows = []
    for r in replays:
        row: dict[str, Any] = {c: r.get(c) for c in REPLAY_COLUMNS}
        if not row["decided_by"]:
            pending = r.get("state") == "pending_approval"
            row["decided_by"] = "awaiting approval" if pending else "no approval needed"
        row["requested"] = format_time(r.get("requested_at"))
        row["finished"] = format_time(r.get("finished_at")) if r.get("finished_at") else "—"
        rows.append(row)
    return rows
