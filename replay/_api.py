"""The control API of dead letters, replays, approvals and the audit trail.

Every endpoint checks the caller's role (``collector.require_role``, before the body
is read: ``collector.ControlRoute``): viewer reads, operator dry-runs, requests replays
and ignores or resolves dead letters, approver approves or rejects, admin does
everything. Errors answer RFC 9457 problem details (``collector.Problem``) with the
status of the error class (``http_status``): 404 unknown, 409 wrong state, 403 refused
(role, four eyes), 422 invalid selection or correction, 503 bus or store unavailable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from collector import Principal, Role
from collector.api import MAX_OFFSET, ControlRoute, IsoDateTime, not_found, require_role, responses
from tracing import Reason, SystemName, ValidationError

from ._access import to_json
from ._api_models import (
    AuditPage,
    AuditVerdict,
    DeadLetterGroupPage,
    DeadLetterRecord,
    PlanAnswer,
    ReplayAnswer,
    ReplayPage,
    ReplayRecord,
    WhoAmI,
)
from ._models import Corrections, DeadLetterState, ReplayState, Selection
from ._service import ReplayService

__all__ = ["replay_router"]

Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Approver = Annotated[Principal, Depends(require_role(Role.APPROVER))]


class ReplayRequest(BaseModel):
    """``POST /api/v1/replays``: a dry run unless ``dry_run`` is false."""

    model_config = ConfigDict(extra="forbid")

    selection: dict[str, Any]
    dry_run: bool = True
    reason: str = ""
    corrections: dict[str, Any] | None = None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


class Closing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


def _out(value: Any, *, status: int = 200) -> Response:
    # Our own encoding: money stays a string decimal, times ISO 8601 (FastAPI's
    # default encoder would turn Decimal into float).
    return Response(to_json(value), status_code=status, media_type="application/json")


def _selection(data: dict[str, Any]) -> Selection:
    try:
        return Selection.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = "selection." + (".".join(str(p) for p in first["loc"]) or "selection")
        raise ValidationError(f"{where}: {first['msg']}", field=where) from exc


def _corrections(data: dict[str, Any] | None) -> Corrections | None:
    if data is None:
        return None
    try:
        return Corrections.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = "corrections." + (".".join(str(p) for p in first["loc"]) or "corrections")
        raise ValidationError(f"{where}: {first['msg']}", field=where) from exc


def _filters(
    state: str | None,
    reason: Reason | None,
    step: str | None,
    target: SystemName | None,
    since: datetime | None,
    until: datetime | None,
    sla_rule: str | None,
    correlation_id: str | None,
) -> Selection:
    states: tuple[DeadLetterState, ...] = ()
    if state:
        try:
            states = tuple(DeadLetterState(s.strip()) for s in state.split(",") if s.strip())
        except ValueError as exc:
            raise ValidationError(f"state: {exc}", field="state") from exc
    try:
        return Selection(
            reason=reason,
            step=step or None,
            target=target,
            since=since,
            until=until,
            sla_rule=sla_rule or None,
            correlation_id=correlation_id or None,
            states=states,
        )
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = str(first["loc"][0])
        raise ValidationError(f"{where}: {first['msg']}", field=where) from exc


_STATE_NAMES = "|".join(s.value for s in DeadLetterState)
_STATES_PATTERN = rf"^(|({_STATE_NAMES})(,({_STATE_NAMES}))*)$"


def _filter_params(
    state: Annotated[
        str | None,
        Query(
            pattern=_STATES_PATTERN,
            description="dead-letter states, comma-separated (default open)",
        ),
    ] = "open",
    reason: Reason | None = None,
    step: str | None = None,
    target: SystemName | None = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    sla_rule: str | None = None,
    correlation_id: str | None = None,
) -> Selection:
    """Dead-letter filters from the query string (``state`` may list several)."""
    return _filters(state, reason, step, target, since, until, sla_rule, correlation_id)


Filters = Annotated[Selection, Depends(_filter_params)]


def replay_router(service: ReplayService) -> APIRouter:
    """The router under ``/api/v1``; include it in the collector's app."""
    router = APIRouter(prefix="/api/v1", tags=["replay"], route_class=ControlRoute)
    missing = not_found()
    conflict = responses(404, 409)
    decision = responses(403, 404, 409)

    @router.get("/whoami", response_model=WhoAmI)
    async def whoami(principal: Viewer) -> Response:
        """The caller's name and role, so a dashboard can hide what the role cannot do."""
        return _out({"name": principal.name, "role": principal.role.name.lower()})

    @router.get("/dead-letter-groups", response_model=DeadLetterGroupPage)
    async def groups(_: Viewer, selection: Filters) -> Response:
        """Dead letters grouped by reason and step ("412 ERP timeouts worth $1.3M")."""
        items = await service.groups(selection)
        return _out({"items": items, "total": len(items)})

    @router.get("/dead-letters/{event_id}", response_model=DeadLetterRecord, responses=missing)
    async def dead_letter(_: Viewer, event_id: str) -> Response:
        """One dead letter, its dead-lettered event and its input event (payloads masked)."""
        return _out(await service.dead_letter(event_id))

    @router.post(
        "/dead-letters/{event_id}/ignore", response_model=DeadLetterRecord, responses=conflict
    )
    async def ignore(principal: Operator, event_id: str, body: Closing) -> Response:
        """Close an open dead letter without redoing it (a reason is required)."""
        return _out(await service.ignore(event_id, principal, reason=body.reason))

    @router.post(
        "/dead-letters/{event_id}/resolve", response_model=DeadLetterRecord, responses=conflict
    )
    async def resolve(principal: Operator, event_id: str, body: Closing) -> Response:
        """Mark an open dead letter as fixed by hand."""
        return _out(await service.resolve(event_id, principal, note=body.reason))

    @router.post(
        "/replays",
        response_model=PlanAnswer,
        responses={202: {"model": ReplayAnswer, "description": "The replay is recorded."}},
    )
    async def create(principal: Operator, body: ReplayRequest) -> Response:
        """Dry run by default; with ``"dry_run": false`` record the replay (202)."""
        selection = _selection(body.selection)
        corrections = _corrections(body.corrections)
        if body.dry_run:
            plan = await service.dry_run(selection, corrections=corrections)
            return _out({"dry_run": True, **plan.model_dump(mode="json")})
        record = await service.request(
            selection, principal, reason=body.reason, corrections=corrections
        )
        return _out({"dry_run": False, **record}, status=202)

    @router.get("/replays", response_model=ReplayPage)
    async def replays(
        _: Viewer,
        state: ReplayState | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response:
        """Replays, newest first."""
        items, total = await service.list_replays(state=state, limit=limit, offset=offset)
        return _out({"items": items, "total": total})

    @router.get("/approvals", response_model=ReplayPage)
    async def approvals(_: Viewer) -> Response:
        """The approvals queue: replays waiting for a second person."""
        items, total = await service.list_replays(state=ReplayState.PENDING_APPROVAL, limit=500)
        return _out({"items": items, "total": total})

    @router.get("/replays/{replay_id}", response_model=ReplayRecord, responses=missing)
    async def progress(_: Viewer, replay_id: str) -> Response:
        """A replay's state, counts and per-item outcome."""
        return _out(await service.progress(replay_id))

    @router.post("/replays/{replay_id}/approve", response_model=ReplayRecord, responses=decision)
    async def approve(
        principal: Approver, replay_id: str, body: Decision | None = None
    ) -> Response:
        """Approve a pending replay (not one's own); it then runs."""
        note = body.note if body else None
        return _out(await service.approve(replay_id, principal, note=note))

    @router.post("/replays/{replay_id}/reject", response_model=ReplayRecord, responses=decision)
    async def reject(principal: Approver, replay_id: str, body: Decision | None = None) -> Response:
        """Reject a pending replay; its dead letters go back to open."""
        note = body.note if body else None
        return _out(await service.reject(replay_id, principal, note=note))

    @router.get("/audit", response_model=AuditPage)
    async def audit(
        _: Viewer,
        action: str | None = None,
        subject: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response:
        """Audit entries, newest first."""
        items, total = await service.audit(
            limit=limit, offset=offset, action=action, subject=subject
        )
        return _out({"items": items, "total": total})

    @router.get("/audit/verify", response_model=AuditVerdict)
    async def verify(_: Viewer) -> Response:
        """Recompute the hash chain; ``ok`` false names every altered or missing entry."""
        verdict = await service.verify_audit()
        return _out(verdict.to_dict())

    return router
