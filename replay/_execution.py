"""The SQL of running a replay: claiming an approved one and recording its end.

Each function runs inside one lineage write transaction (``LineageAccess.write``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

from collector.lineage import (
    move_dead_letters,
    reopen_failed_replays,
    resolve_replayed,
    update_from_values,
)

from ._delivery import ItemResult
from ._models import REPLAYABLE_STATES, DeadLetterState, ItemState, ReplayState, Selection
from ._queries import ITEM_COLUMNS, allowed_states, json_value, states_of

__all__ = ["claim_replay", "finish_replay"]


def claim_replay(
    conn: duckdb.DuckDBPyConnection, replay_id: str, now: datetime
) -> tuple[str | None, Any, list[dict[str, Any]]]:
    """Move an approved replay to running and settle which items it delivers.

    Returns ``(refusal, corrections, items)``: ``refusal`` is ``"missing"`` or the
    replay's current state when it is not approved.
    """
    row = conn.execute(
        "UPDATE replays SET state = ?, started_at = ? WHERE replay_id = ? AND state = ? "
        "RETURNING corrections, selection",
        [ReplayState.RUNNING.value, now, replay_id, ReplayState.APPROVED.value],
    ).fetchone()
    if row is None:
        current = conn.execute(
            "SELECT state FROM replays WHERE replay_id = ?", [replay_id]
        ).fetchone()
        return ("missing" if current is None else str(current[0])), None, []
    items = [
        dict(zip(ITEM_COLUMNS, r, strict=True))
        for r in conn.execute(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM replay_items WHERE replay_id = ?",
            [replay_id],
        ).fetchall()
    ]
    # Re-check now: an approval can come hours after the request, and the
    # dead letter may have been resolved or ignored meanwhile.
    allowed = allowed_states(Selection.model_validate(json_value(row[1])))
    states_now = states_of(conn, [i["dead_letter_id"] for i in items])
    stale: list[list[Any]] = []
    for item in items:
        state = states_now.get(item["dead_letter_id"])
        if item["action"] == "deliver" and state not in allowed:
            item["action"] = "skip"
            item["skip_reason"] = f"dead letter was {state} before the replay ran"
            stale.append([item["dead_letter_id"], item["skip_reason"]])
    update_from_values(
        conn,
        "UPDATE replay_items AS i SET action = 'skip', skip_reason = v.why "
        "FROM (VALUES {values}) AS v(dl, why) "
        "WHERE i.replay_id = {a0} AND i.dead_letter_id = v.dl",
        stale,
        after=[replay_id],
    )
    deliver = [i["dead_letter_id"] for i in items if i["action"] == "deliver"]
    move_dead_letters(
        conn,
        deliver,
        DeadLetterState.REPLAYING,
        by="interlock",
        at=now,
        note=f"replay {replay_id} running",
        from_states=(DeadLetterState.OPEN, DeadLetterState.REPLAY_REQUESTED),
    )
    if DeadLetterState.RESOLVED in allowed:
        # An explicit redo of resolved ones: they are being replayed again.
        move_dead_letters(
            conn,
            deliver,
            DeadLetterState.REPLAYING,
            by="interlock",
            at=now,
            note=f"replay {replay_id} redoing a resolved step",
            from_states=(DeadLetterState.RESOLVED,),
        )
    held = [
        i["dead_letter_id"]
        for i in items
        if i["action"] == "skip" and i["skip_reason"] == "target already holds the effect"
    ]
    move_dead_letters(
        conn,
        held,
        DeadLetterState.RESOLVED,
        by="interlock",
        at=now,
        note=f"the target already holds the effect (checked by replay {replay_id})",
        from_states=REPLAYABLE_STATES,
    )
    return None, json_value(row[0]), items


def finish_replay(
    conn: duckdb.DuckDBPyConnection,
    replay_id: str,
    items: Sequence[dict[str, Any]],
    results: Sequence[ItemResult],
    now: datetime,
) -> tuple[ReplayState, dict[str, Any]]:
    """Record every item's outcome, resolve or reopen its dead letter, close the
    replay; returns its final state and the counts for the audit entry."""
    by_id = {r.dead_letter_id: r for r in results}
    succeeded = [r for r in results if r.state is ItemState.SUCCEEDED]
    failed = [r for r in results if r.state in (ItemState.FAILED, ItemState.TIMEOUT)]
    skipped = [i for i in items if i["action"] == "skip"]
    final = ReplayState.FAILED if failed else ReplayState.COMPLETED
    rows: list[list[Any]] = []
    for item in items:
        result = by_id.get(item["dead_letter_id"])
        if result is None:
            rows.append([item["dead_letter_id"], ItemState.SKIPPED.value, None, None, None])
        else:
            rows.append(
                [
                    result.dead_letter_id,
                    result.state.value,
                    result.replayed_event_id,
                    result.outcome_event_id,
                    result.error,
                ]
            )
    update_from_values(
        conn,
        "UPDATE replay_items AS i SET state = v.state, replayed_event_id = v.replayed, "
        "outcome_event_id = v.outcome, error = v.error, updated_at = {b0} "
        "FROM (VALUES {values}) AS v(dl, state, replayed, outcome, error) "
        "WHERE i.replay_id = {a0} AND i.dead_letter_id = v.dl",
        rows,
        before=[now],
        after=[replay_id],
    )
    resolve_replayed(
        conn,
        [(r.dead_letter_id, r.outcome_event_id) for r in succeeded],
        by="interlock",
        at=now,
        note=f"replay {replay_id} succeeded",
    )
    reopen_failed_replays(
        conn,
        [(r.dead_letter_id, r.error or f"replay {replay_id} failed") for r in failed],
        by="interlock",
        at=now,
        note=f"replay {replay_id} failed",
    )
    conn.execute(
        "UPDATE replays SET state = ?, finished_at = ?, skipped = ?, delivered = ?, "
        "succeeded = ?, failed = ? WHERE replay_id = ?",
        [
            final.value,
            now,
            len(skipped),
            sum(1 for r in results if r.replayed_event_id),
            len(succeeded),
            len(failed),
            replay_id,
        ],
    )
    what = {
        "total": len(items),
        "skipped": len(skipped),
        "succeeded": len(succeeded),
        "failed": len(failed),
        "errors": sorted({r.error for r in failed if r.error})[:10],
    }
    return final, what
