"""Every call the pages make to the control API: one named function per route.

Pages and view modules call these and never the client directly, and no route string
lives anywhere else in the dashboard (``tests/dashboards/test_data_boundary.py`` checks
it), so the routes and the cache policy live in one place.

Reads are cached briefly with ``st.cache_data``. The cache key includes the API URL and
token: pointing the dashboard at another collector never serves the first one's
numbers. Errors are not cached (``st.cache_data`` only keeps return values), so a
collector that comes back up is seen on the next rerun.

Writes (requesting a replay, approving or rejecting one, acknowledging an alert,
resolving or ignoring a dead letter) are never cached, and empty the read cache once
the API accepted them, so the page drawn next shows their effect. A dry run changes
nothing: it is not cached and leaves the cache alone.

A read of a route a collector may not serve (a collector without the SLA or replay
plug-in) goes through ``optional(read, ...)``: ``None`` on 404, so a page section says
so instead of failing the whole page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import quote

import streamlit as st

from ._client import ControlApiError, ControlClient, api_token, api_url, client_for

__all__ = [
    "REFRESH_SECONDS",
    "acknowledge_alert",
    "adapters",
    "alerts",
    "approvals",
    "approve_replay",
    "audit",
    "audit_verify",
    "check_token",
    "clear_cache",
    "dead_letter",
    "dead_letter_groups",
    "dead_letters",
    "health",
    "ignore_dead_letter",
    "lanes",
    "optional",
    "plan_replay",
    "reject_replay",
    "replay",
    "replays",
    "request_replay",
    "resolve_dead_letter",
    "sla_history",
    "sla_report",
    "sla_report_file",
    "sla_rules",
    "stats",
    "systems",
    "throughput",
    "transaction",
    "transactions",
    "whoami",
]

#: How long a read is reused. Short: the dashboard watches a live system.
REFRESH_SECONDS = 5

P = ParamSpec("P")
T = TypeVar("T")

#: A JSON object as the control API answers it.
Json = dict[str, Any]

_API = "/api/v1"


def _segment(value: str) -> str:
    """One path segment (an ID) escaped, so ``/`` or ``?`` in it cannot change the route."""
    return quote(value, safe="")


def _object(body: Any, path: str) -> Json:
    if not isinstance(body, dict):
        raise ControlApiError(200, "expected a JSON object", url=f"{api_url()}{path}")
    return body


def _list(body: Json, key: str, path: str) -> list[Json]:
    value = body.get(key)
    if not isinstance(value, list):
        raise ControlApiError(200, f"expected {{{key}: [...]}}", url=f"{api_url()}{path}")
    return value


# -- the cached reads ----------------------------------------------------------------------


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _health(url: str, token: str | None) -> Json:
    return client_for(url, token).health()


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _stats(url: str, token: str | None) -> Json:
    return client_for(url, token).stats()


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _transactions(
    url: str, token: str | None, limit: int, offset: int, state: str | None, q: str | None
) -> Json:
    return client_for(url, token).transactions(limit=limit, offset=offset, state=state, q=q)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _transaction(url: str, token: str | None, correlation_id: str) -> Json:
    return client_for(url, token).transaction(correlation_id)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _get(url: str, token: str | None, path: str, params: tuple[tuple[str, Any], ...]) -> Any:
    return client_for(url, token).get_json(path, **dict(params))


def _read(path: str, **params: Any) -> Json:
    """A cached JSON-object read of ``path`` (``None``/empty params are dropped)."""
    body = _get(api_url(), api_token(), path, tuple(sorted(params.items())))
    return _object(body, path)


def health() -> Json:
    """``/healthz``: ``{"status": "ok"|"degraded", "checks": {...}}``."""
    return _health(api_url(), api_token())


def stats() -> Json:
    """Counts, values by state, backlog (``/stats``)."""
    return _stats(api_url(), api_token())


def transactions(
    *, limit: int = 50, offset: int = 0, state: str | None = None, q: str | None = None
) -> Json:
    """Transactions, newest first: ``{"items": [...], "total": n}``."""
    return _transactions(api_url(), api_token(), limit, offset, state or None, q or None)


def transaction(correlation_id: str) -> Json:
    """One transaction's summary plus ``events``; 404 is ``ControlApiError``."""
    return _transaction(api_url(), api_token(), correlation_id)


def dead_letters(
    *,
    state: str | None = "open",
    reason: str | None = None,
    target: str | None = None,
    step: str | None = None,
    correlation_id: str | None = None,
    group: str | None = None,
    limit: int = 100,
    offset: int = 0,
    cursor: str | None = None,
) -> Json:
    """The dead-letter list, by any filter (``state`` may list several, comma separated;
    ``group`` is a group ID of ``dead_letter_groups``): ``{"items": [...], "total": n,
    "next_cursor": ...}``."""
    path = f"{_API}/dead-letters"
    page = _read(
        path,
        state=state,
        reason=reason,
        target=target,
        step=step,
        correlation_id=correlation_id,
        group=group,
        limit=limit,
        offset=offset or None,
        cursor=cursor,
    )
    _list(page, "items", path)
    return page


def systems() -> list[Json]:
    """The systems in lane order, as the plug-ins declare them (``/systems``)."""
    path = f"{_API}/systems"
    return _list(_read(path), "systems", path)


def lanes() -> list[str]:
    """The systems' names in lane order (empty when the collector does not serve them:
    lanes then sort by name)."""
    return [str(s["name"]) for s in optional(systems) or []]


def whoami() -> Json:
    """``{"name", "role"}`` of the caller as the API sees the current token; 404 on a
    collector without the replay router."""
    return _read(f"{_API}/whoami")


def adapters(*, window_minutes: int = 60) -> Json:
    """Per external system: rates, errors by class, latency, circuit, backlog."""
    return _read(f"{_API}/adapters", window_minutes=window_minutes)


def throughput(*, hours: int = 24, bucket_minutes: int = 15) -> Json:
    """Events stored per bucket by status: ``{"points": [...], "window_start", ...}``."""
    return _read(f"{_API}/throughput", hours=hours, bucket_minutes=bucket_minutes)


def sla_rules() -> list[Json]:
    """Every SLA rule with its status (``rules`` of ``/sla``)."""
    path = f"{_API}/sla"
    return _list(_read(path), "rules", path)


def sla_history(rule_id: str, *, limit: int = 1440) -> list[Json]:
    """One SLA's stored evaluations (``history`` of ``/sla/{rule_id}/history``)."""
    path = f"{_API}/sla/{_segment(rule_id)}/history"
    return _list(_read(path, limit=limit), "history", path)


def alerts(*, include_resolved: bool = False) -> list[Json]:
    """SLA alerts ranked by business impact (``alerts`` of ``/alerts``)."""
    path = f"{_API}/alerts"
    return _list(_read(path, include_resolved=include_resolved), "alerts", path)


def sla_report(
    *, period: str = "last-7d", start: str | None = None, end: str | None = None
) -> Json:
    """The executive SLA report for a period, as JSON (``/reports/sla``)."""
    return _read(f"{_API}/reports/sla", period=period, start=start, end=end)


def sla_report_file(
    fmt: Literal["pdf", "csv"],
    *,
    period: str = "last-7d",
    start: str | None = None,
    end: str | None = None,
) -> bytes:
    """The SLA report as a PDF or CSV file. Not cached: a download button fetches it
    when clicked (outside the script run), once per click."""
    return client_for(api_url(), api_token()).get_bytes(
        f"{_API}/reports/sla", period=period, start=start, end=end, format=fmt
    )


def dead_letter_groups(
    *, state: str | None = "open", reason: str | None = None, target: str | None = None
) -> Json:
    """Dead letters grouped by reason and step: ``{"items": [...], "total": n}``."""
    return _read(f"{_API}/dead-letter-groups", state=state, reason=reason, target=target)


def dead_letter(event_id: str) -> Json:
    """One dead-letter record with its ``input_event`` and ``event``; 404 if unknown."""
    return _read(f"{_API}/dead-letters/{_segment(event_id)}")


def replays(*, limit: int = 50) -> Json:
    """Recorded replays: ``{"items": [...], "total": n}``."""
    return _read(f"{_API}/replays", limit=limit)


def replay(replay_id: str) -> Json:
    """One replay's progress and items; 404 if unknown."""
    return _read(f"{_API}/replays/{_segment(replay_id)}")


def approvals() -> Json:
    """Replays waiting for a second person: ``{"items": [...], "total": n}``."""
    return _read(f"{_API}/approvals")


def audit_verify() -> Json:
    """The check of the whole audit chain: ``{"ok", "entries", "head_seq", ...}``."""
    return _read(f"{_API}/audit/verify")


def audit(*, action: str | None = None, limit: int = 100) -> Json:
    """Audit entries, newest first: ``{"items": [...], "total": n}``."""
    return _read(f"{_API}/audit", action=action, limit=limit)


def reconciliations(*, limit: int = 50) -> Json:
    """Reconciliation runs, newest first: ``{"items": [...], "total": n}``."""
    return _read(f"{_API}/reconciliations", limit=limit)


def reconciliation(run_id: str, *, kind: str | None = None, system: str | None = None) -> Json:
    """One run and its discrepancies (``items``), most money first."""
    return _read(f"{_API}/reconciliations/{_segment(run_id)}", kind=kind, system=system)


def customers(*, q: str | None = None, limit: int = 50) -> Json:
    """Golden records by name (PII masked): ``{"items": [...], "total": n}``."""
    return _read(f"{_API}/customers", q=q or None, limit=limit)


def customer(customer_id: str) -> Json:
    """One golden record: ``record``, ``xref``, ``changes``, ``open_items``, ``transactions``."""
    return _read(f"{_API}/customers/{_segment(customer_id)}")


def optional(read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """``read(...)``, but ``None`` when this collector does not serve its route (404):
    ``optional(sla_rules)``."""
    try:
        return read(*args, **kwargs)
    except ControlApiError as exc:
        if exc.status == 404:
            return None
        raise


def check_token(token: str | None) -> Json:
    """``whoami`` for ``token`` instead of the session's, uncached and on a client of its
    own: sign-in checks a typed token before keeping it. 401 for an unknown token."""
    path = f"{_API}/whoami"
    with ControlClient(api_url(), token or None) as client:
        return _object(client.get_json(path), path)


# -- writes: never cached; each empties the read cache once accepted -----------------------


def _post(path: str, body: Mapping[str, Any]) -> Any:
    return client_for(api_url(), api_token()).post_json(path, dict(body))


def _write(path: str, body: Mapping[str, Any]) -> Json:
    answer = _post(path, body)
    clear_cache()
    return _object(answer, path) if answer is not None else {}


def _replay_body(
    selection: Mapping[str, Any], corrections: Mapping[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"selection": dict(selection)}
    if corrections is not None:  # as typed: the API says what is wrong with it
        body["corrections"] = corrections
    return body


def plan_replay(
    selection: Mapping[str, Any], *, corrections: Mapping[str, Any] | None = None
) -> Json:
    """A dry run of a replay of ``selection`` (``{"event_id": ...}``, ``{"group": ...}``,
    ``{"correlation_id": ...}``): what it would deliver. Changes nothing."""
    path = f"{_API}/replays"
    answer = _post(path, {**_replay_body(selection, corrections), "dry_run": True})
    return _object(answer, path)


def request_replay(
    selection: Mapping[str, Any], *, reason: str, corrections: Mapping[str, Any] | None = None
) -> Json:
    """Record a replay of ``selection`` (it may wait for approval): ``{"replay_id",
    "state", ...}``."""
    body = {**_replay_body(selection, corrections), "dry_run": False, "reason": reason}
    return _write(f"{_API}/replays", body)


def approve_change(change_id: str) -> Json:
    """One approval of a customer change request (a second person's starts propagation)."""
    return _write(f"{_API}/change-requests/{_segment(change_id)}/approve", {})


def reject_change(change_id: str, *, reason: str) -> Json:
    return _write(f"{_API}/change-requests/{_segment(change_id)}/reject", {"reason": reason})


def retry_change(change_id: str) -> Json:
    """Resume a halted propagation from the stage that failed."""
    return _write(f"{_API}/change-requests/{_segment(change_id)}/retry", {})


def approve_replay(replay_id: str, *, note: str | None = None) -> Json:
    """Approve a waiting replay (a second person's decision): the replay record."""
    return _write(f"{_API}/replays/{_segment(replay_id)}/approve", {"note": note})


def reject_replay(replay_id: str, *, note: str | None = None) -> Json:
    """Reject a waiting replay: the replay record."""
    return _write(f"{_API}/replays/{_segment(replay_id)}/reject", {"note": note})


def acknowledge_alert(alert_id: str, *, note: str | None = None) -> Json:
    """Acknowledge a firing SLA alert, with an optional note."""
    return _write(f"{_API}/alerts/{_segment(alert_id)}/ack", {"note": note or None})


def resolve_dead_letter(event_id: str, *, reason: str) -> Json:
    """Close an open dead letter as fixed outside Interlock (recorded with ``reason``)."""
    return _write(f"{_API}/dead-letters/{_segment(event_id)}/resolve", {"reason": reason})


def ignore_dead_letter(event_id: str, *, reason: str) -> Json:
    """Close an open dead letter as nothing to do (recorded with ``reason``)."""
    return _write(f"{_API}/dead-letters/{_segment(event_id)}/ignore", {"reason": reason})


def start_reconciliation(period: str) -> Json:
    """Start a run over the last ``period`` (operator): ``{"run_id": ..., "status": ...}``."""
    return _write(f"{_API}/reconciliations", {"period": period})


def explain_discrepancy(run_id: str, discrepancy_id: str, *, reason: str) -> Json:
    """Mark a discrepancy explained, with the reason (operator)."""
    path = f"{_API}/reconciliations/{_segment(run_id)}/discrepancies/{_segment(discrepancy_id)}"
    return _write(f"{path}/explain", {"reason": reason})


def resync_discrepancy(run_id: str, discrepancy_id: str) -> Json:
    """Re-read a discrepancy's record from its owning system (operator)."""
    path = f"{_API}/reconciliations/{_segment(run_id)}/discrepancies/{_segment(discrepancy_id)}"
    return _write(f"{path}/resync", {})


def clear_cache() -> None:
    """Forget every cached read (after a control action, a sign-in, or on "Refresh")."""
    for cached in (_health, _stats, _transactions, _transaction, _get):
        cached.clear()
