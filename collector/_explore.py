"""Read-only queries for the control plane's adapter and throughput views, and their router.

Adapter figures are computed from the lineage, where every step an adapter takes is an
event: ``source = interlock`` and ``target = <system>`` is a call out to that system, its
``status`` says how it went (``ok``, ``retrying``, ``failed``, ``dead_lettered``),
``error_reason`` classifies a failure and ``duration_ms`` is the call's latency. Inbound
events (``source = <system>``) are webhooks and polled changes.

The adapters have no circuit breaker. ``circuit`` here is *derived*: the number of
consecutive failed calls since the last successful one, labelled ``closed`` (last call
ok), ``degraded`` (1-4 failures in a row) or ``open-like`` (5 or more), so an operator
sees what a breaker would have done, not a state some component holds.

Every query aggregates in DuckDB and answers a few dozen rows, whatever the volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, Query

from ._api_docs import ok
from ._api_models import AdapterFigures, Systems, Throughput
from ._auth import ControlRoute, Role, require_role
from ._contracts import SystemInfo
from ._lineage import AsyncLineage
from ._lineage_rows import iso
from ._schema import UNRESOLVED_DEAD_LETTER_STATES

__all__ = [
    "OPEN_LIKE_AFTER",
    "adapter_figures",
    "circuit_state",
    "explore_router",
    "throughput",
]

#: Consecutive failed calls after which the derived circuit reads ``open-like``.
OPEN_LIKE_AFTER = 5

_FAILURES = ("retrying", "failed", "dead_lettered")
_SUCCESSES = ("ok", "replayed")
_CALL_STATUSES = (*_SUCCESSES, *_FAILURES)


def circuit_state(consecutive_failures: int) -> str:
    """``closed`` / ``degraded`` / ``open-like`` from trailing consecutive failures.

    >>> [circuit_state(n) for n in (0, 1, 4, 5)]
    ['closed', 'degraded', 'degraded', 'open-like']
    """
    if consecutive_failures <= 0:
        return "closed"
    if consecutive_failures < OPEN_LIKE_AFTER:
        return "degraded"
    return "open-like"


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" * len(values))


def adapter_figures(
    cur: duckdb.DuckDBPyConnection,
    *,
    now: datetime,
    window: timedelta,
    systems: Sequence[str],
) -> dict[str, Any]:
    """Per system in ``systems`` (the host's, in lane order): calls, rate, errors by
    class, latency percentiles, 429s, derived circuit, last success and backlog, over
    ``[now - window, now]``."""
    since = now - window
    # No system installed: a placeholder no target matches keeps the SQL valid.
    names = tuple(systems) or ("",)
    calls: dict[str, dict[str, Any]] = {
        s: {
            "system": s,
            "calls": 0,
            "errors": 0,
            "error_rate": None,
            "errors_by_reason": {},
            "latency_ms": {"p50": None, "p95": None, "p99": None},
            "rate_limited": 0,
            "wait_after_429_ms": None,
            "inbound": 0,
            "last_success_at": None,
            "last_call_at": None,
            "consecutive_failures": 0,
            "circuit": "closed",
            "dead_letters_open": 0,
            "retrying_now": 0,
        }
        for s in systems
    }
    window_params = [since, now]
    for system, n, errors, p50, p95, p99, rate_limited, last_call in cur.execute(
        "SELECT target, count(*), "
        f"count(*) FILTER (WHERE status IN ({_marks(_FAILURES)})), "
        "quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95), "
        "quantile_cont(duration_ms, 0.99), "
        "count(*) FILTER (WHERE error_status = 429 OR error_reason = 'rate_limit'), "
        "max(event_time) "
        "FROM events WHERE source = 'interlock' AND event_time >= ? AND event_time <= ? "
        f"AND status IN ({_marks(_CALL_STATUSES)}) AND target IN ({_marks(names)}) "
        "GROUP BY target",
        [*_FAILURES, *window_params, *_CALL_STATUSES, *names],
    ).fetchall():
        entry = calls[system]
        entry.update(
            calls=int(n),
            errors=int(errors),
            error_rate=(errors / n) if n else None,
            latency_ms={"p50": p50, "p95": p95, "p99": p99},
            rate_limited=int(rate_limited),
            last_call_at=iso(last_call),
        )
    for system, reason, n in cur.execute(
        "SELECT target, coalesce(error_reason, 'unknown'), count(*) FROM events "
        "WHERE source = 'interlock' AND event_time >= ? AND event_time <= ? "
        f"AND status IN ({_marks(_FAILURES)}) AND target IN ({_marks(names)}) "
        "GROUP BY ALL ORDER BY 3 DESC",
        [*window_params, *_FAILURES, *names],
    ).fetchall():
        calls[system]["errors_by_reason"][reason] = int(n)
    # Retry-After honoured: how long the next attempt of the same step waited after a 429.
    for system, wait in cur.execute(
        "WITH attempts AS (SELECT target, status, error_status, error_reason, event_time, "
        "lead(event_time) OVER (PARTITION BY correlation_id, step ORDER BY event_time, "
        "event_id) AS next_at FROM events WHERE source = 'interlock' "
        "AND event_time >= ? AND event_time <= ? "
        f"AND target IN ({_marks(names)})) "
        "SELECT target, median(epoch_ms(next_at) - epoch_ms(event_time)) FROM attempts "
        "WHERE (error_status = 429 OR error_reason = 'rate_limit') AND next_at IS NOT NULL "
        "GROUP BY target",
        [*window_params, *names],
    ).fetchall():
        calls[system]["wait_after_429_ms"] = float(wait) if wait is not None else None
    for system, n in cur.execute(
        "SELECT source, count(*) FROM events WHERE target = 'interlock' "
        f"AND event_time >= ? AND event_time <= ? AND source IN ({_marks(names)}) "
        "GROUP BY source",
        [*window_params, *names],
    ).fetchall():
        calls[system]["inbound"] = int(n)
    # Last success and the failures after it: all time, not just the window, so a
    # system that has failed for hours still shows when it last worked.
    for system, last_ok in cur.execute(
        "SELECT target, max(event_time) FROM events WHERE source = 'interlock' "
        f"AND status IN ({_marks(_SUCCESSES)}) AND target IN ({_marks(names)}) "
        "GROUP BY target",
        [*_SUCCESSES, *names],
    ).fetchall():
        calls[system]["last_success_at"] = iso(last_ok)
        trailing = cur.execute(
            "SELECT count(*) FROM events WHERE source = 'interlock' AND target = ? "
            f"AND event_time > ? AND status IN ({_marks(_FAILURES)})",
            [system, last_ok, *_FAILURES],
        ).fetchone()
        calls[system]["consecutive_failures"] = int(trailing[0]) if trailing else 0
    for system, entry in calls.items():
        if entry["last_success_at"] is None:
            # Never a success: every failure recorded counts.
            row = cur.execute(
                "SELECT count(*) FROM events WHERE source = 'interlock' AND target = ? "
                f"AND status IN ({_marks(_FAILURES)})",
                [system, *_FAILURES],
            ).fetchone()
            entry["consecutive_failures"] = int(row[0]) if row else 0
        entry["circuit"] = circuit_state(entry["consecutive_failures"])
    for system, n in cur.execute(
        "SELECT target, count(*) FROM dead_letters "
        f"WHERE state IN ({_marks(UNRESOLVED_DEAD_LETTER_STATES)}) "
        f"AND target IN ({_marks(names)}) GROUP BY target",
        [*UNRESOLVED_DEAD_LETTER_STATES, *names],
    ).fetchall():
        calls[system]["dead_letters_open"] = int(n)
    # Steps whose latest attempt in the window is a retry: work queued at that system.
    for system, n in cur.execute(
        "SELECT target, count(*) FROM (SELECT target, arg_max(status, event_time) AS last "
        "FROM events WHERE source = 'interlock' AND event_time >= ? AND event_time <= ? "
        f"AND target IN ({_marks(names)}) GROUP BY correlation_id, step, target) "
        "WHERE last = 'retrying' GROUP BY target",
        [*window_params, *names],
    ).fetchall():
        calls[system]["retrying_now"] = int(n)
    minutes = window.total_seconds() / 60
    for entry in calls.values():
        entry["calls_per_minute"] = entry["calls"] / minutes if minutes else None
    return {
        "window_start": iso(since),
        "window_end": iso(now),
        "window_minutes": minutes,
        "circuit_note": (
            "derived: the adapters have no circuit breaker; this is the count of "
            f"consecutive failed calls since the last success ({OPEN_LIKE_AFTER}+ = open-like)"
        ),
        "systems": [calls[s] for s in systems],
    }


def throughput(
    cur: duckdb.DuckDBPyConnection, *, now: datetime, window: timedelta, bucket: timedelta
) -> dict[str, Any]:
    """Events per time bucket and status over ``[now - window, now]``, oldest first."""
    since = now - window
    rows = cur.execute(
        "SELECT time_bucket(?, event_time) AS bucket_at, status, count(*) FROM events "
        "WHERE event_time >= ? AND event_time <= ? GROUP BY ALL ORDER BY bucket_at, status",
        [bucket, since, now],
    ).fetchall()
    return {
        "window_start": iso(since),
        "window_end": iso(now),
        "bucket_seconds": bucket.total_seconds(),
        "points": [{"at": iso(at), "status": status, "events": int(n)} for at, status, n in rows],
    }


def explore_router(
    lineage: AsyncLineage,
    *,
    systems: Sequence[SystemInfo],
    clock: Callable[[], datetime] | None = None,
) -> APIRouter:
    """``GET /api/v1/systems``, ``GET /api/v1/adapters`` and ``GET /api/v1/throughput``
    (viewer role) over ``lineage``; ``systems`` are the host's (``Host.systems``).

    Mount it on the control API next to the other routers:
    ``create_app(..., routers=[..., explore_router(lineage, systems=host.systems)])``.
    """
    lanes = sorted(systems, key=lambda s: (s.lane, s.name))
    adapter_systems = tuple(s.name for s in lanes if s.name != "interlock")
    router = APIRouter(prefix="/api/v1", tags=["explore"], route_class=ControlRoute)
    viewer = Depends(require_role(Role.VIEWER))

    def _now() -> datetime:
        return clock() if clock is not None else datetime.now(UTC)

    @router.get("/systems", dependencies=[viewer], response_model=None, responses=ok(Systems))
    async def list_systems() -> dict[str, Any]:
        """The business systems Interlock connects, in lane order (left to right in the
        transaction explorer), with Interlock's own lane among them."""
        return {"systems": [s.as_dict() for s in lanes]}

    @router.get(
        "/adapters", dependencies=[viewer], response_model=None, responses=ok(AdapterFigures)
    )
    async def adapters(
        window_minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
    ) -> dict[str, Any]:
        """Per external system: request rate, errors by class, latency, 429s, derived
        circuit state, last success and backlog, over the last ``window_minutes``."""
        now = _now()
        return await lineage.read(
            lambda cur: adapter_figures(
                cur,
                now=now,
                window=timedelta(minutes=window_minutes),
                systems=adapter_systems,
            )
        )

    @router.get("/throughput", dependencies=[viewer], response_model=None, responses=ok(Throughput))
    async def events_throughput(
        hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24,
        bucket_minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 15,
    ) -> dict[str, Any]:
        """Events stored per ``bucket_minutes`` and status over the last ``hours``."""
        now = _now()
        return await lineage.read(
            lambda cur: throughput(
                cur,
                now=now,
                window=timedelta(hours=hours),
                bucket=timedelta(minutes=bucket_minutes),
            )
        )

    return router
