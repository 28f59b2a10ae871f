"""Where a transaction waits: a flow's step table, and the SQL that reads it.

A flow declares its step table once (:class:`collector.FlowSteps`, in
``collector/_flowspec.py``). For a transaction that is not completed, a step is *pending* when
its predecessor has an ``ok`` event and it has none; the transaction waits for
its pending step with the earliest due time (``waiting_step``, ``waiting_since``,
``due_at``).

A transaction is *stalled* when that due time has passed and nothing accounts
for it: no unresolved dead letter (open, or in a replay). Every transaction is
then completed, in flight within a deadline, visibly waiting, or stalled; never
silently stuck.

The collector knows no flow: the runtime passes the flows' tables in.

    >>> steps = FlowSteps(
    ...     "demo", "order.placed",
    ...     (FlowStep("erp.order.create", timedelta(minutes=15)),
    ...      FlowStep("billing.invoice.create", timedelta(hours=1))),
    ... )
    >>> steps.predecessor("billing.invoice.create")
    'erp.order.create'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from ._flowspec import FlowStep, FlowSteps
from ._lineage_rows import iso
from ._schema import UNRESOLVED_DEAD_LETTER_STATES

__all__ = ["FlowStep", "FlowSteps", "Waiting", "waiting_for", "waiting_sql"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNRESOLVED = ", ".join(f"'{s}'" for s in UNRESOLVED_DEAD_LETTER_STATES)


@dataclass(frozen=True, slots=True)
class Waiting:
    """What one transaction waits for."""

    step: str
    since: datetime
    due_at: datetime
    stalled: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "waiting_step": self.step,
            "waiting_since": iso(self.since),
            "due_at": iso(self.due_at),
        }


def _us(value: datetime | timedelta) -> int:
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    return int(value.timestamp() * 1_000_000)


def waiting_sql(
    flows: Sequence[FlowSteps],
    now: datetime,
    *,
    among: Sequence[str] | None = None,
    stallable_only: bool = False,
) -> tuple[str, list[Any]]:
    """A relation of every not-completed transaction that waits for a step:
    ``(correlation_id, waiting_step, waiting_since, due_us, stalled)``.

    ``due_us`` is in epoch microseconds; ``among`` restricts it to those
    correlation IDs (a page of summaries); ``stallable_only`` to the transactions
    that can be stalled (``in_progress`` or ``failed``: a dead-lettered one is
    accounted for), for the queries that only want the stalled ones. Needs at
    least one flow.
    """
    if not flows:
        raise ValueError("waiting_sql needs at least one flow")
    rows: list[Any] = []
    values: list[str] = []
    names: set[str] = set()
    for flow in flows:
        for step in flow.steps:
            values.append("(?, ?, ?, ?)")
            rows += [flow.trigger, step.step, flow.predecessor(step.step), _us(step.deadline)]
            names.add(step.step)
    triggers = sorted({f.trigger for f in flows})
    steps = sorted(names)
    restrict = " AND state IN ('in_progress', 'failed')" if stallable_only else ""
    params: list[Any] = [*rows]
    if among is not None:
        restrict += f" AND correlation_id IN ({', '.join('?' * len(among))})" if among else " AND 0"
        params += list(among)
    params += [*triggers, *steps, *triggers, _us(now)]
    sql = f"""
    WITH steps(trigger, step, after, deadline_us) AS (VALUES {", ".join(values)}),
    cand AS (
        SELECT correlation_id FROM transactions WHERE completed_at IS NULL{restrict}
    ),
    ev AS (
        SELECT kind, step, correlation_id, event_time FROM events
        WHERE status = 'ok' AND correlation_id IN (SELECT correlation_id FROM cand)
          AND (kind IN ({", ".join("?" * len(triggers))})
               OR step IN ({", ".join("?" * len(steps))}))
    ),
    trig AS (
        SELECT correlation_id, arg_min(kind, event_time) AS trigger, min(event_time) AS t
        FROM ev WHERE kind IN ({", ".join("?" * len(triggers))}) GROUP BY correlation_id
    ),
    done AS (SELECT correlation_id, step, min(event_time) AS t FROM ev GROUP BY ALL),
    pending AS (
        SELECT tr.correlation_id, s.step, coalesce(p.t, tr.t) AS since,
               epoch_us(coalesce(p.t, tr.t)) + s.deadline_us AS due_us
        FROM trig tr JOIN steps s ON s.trigger = tr.trigger
        LEFT JOIN done d ON d.correlation_id = tr.correlation_id AND d.step = s.step
        LEFT JOIN done p ON p.correlation_id = tr.correlation_id AND p.step = s.after
        WHERE d.t IS NULL AND (s.after IS NULL OR p.t IS NOT NULL)
    ),
    w AS (
        SELECT correlation_id, arg_min(step, due_us) AS waiting_step,
               arg_min(since, due_us) AS waiting_since, min(due_us) AS due_us
        FROM pending GROUP BY correlation_id
    )
    SELECT w.*, (w.due_us < ? AND NOT EXISTS (
        SELECT 1 FROM dead_letters d
        WHERE d.correlation_id = w.correlation_id AND d.state IN ({_UNRESOLVED})
    )) AS stalled
    FROM w
    """
    return sql, params


def waiting_for(
    cur: duckdb.DuckDBPyConnection,
    flows: Sequence[FlowSteps],
    correlation_ids: Sequence[str],
    now: datetime,
) -> dict[str, Waiting]:
    """What each of ``correlation_ids`` waits for (those that wait for nothing are absent)."""
    if not flows or not correlation_ids:
        return {}
    sql, params = waiting_sql(flows, now, among=correlation_ids)
    out: dict[str, Waiting] = {}
    for cid, step, since, due_us, stalled in cur.execute(sql, params).fetchall():
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        due = _EPOCH + timedelta(microseconds=int(due_us))
        out[cid] = Waiting(step, since.astimezone(UTC), due, bool(stalled))
    return out
