"""Control API endpoints for SLA status and history, alerts, acknowledgement, reports.

Reading needs the viewer role; acknowledging an alert needs operator, and the
principal's name is recorded as who acknowledged. With an ``audit`` recorder (the
runtime passes the replay service's), every acknowledgement, refused ones included,
is also an ``alert.acknowledge`` entry of the control audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from collector import Principal, Role
from collector.api import ControlRoute, IsoDateTime, not_found, ok, require_role, responses
from tracing import NotFoundError, ValidationError

from ._alerts import AlertNotFound, AlertStateError
from ._api_models import Alert, AlertChanges, AlertPage, SlaHistory, SlaReport, SlaStatus
from ._engine import SlaEngine
from ._report import build_report, report_csv, report_pdf, resolve_period

__all__ = ["AckRequest", "AuditRecorder", "sla_router"]


class AuditRecorder(Protocol):
    """Appends one entry to the control audit trail (``replay.ReplayService.record``)."""

    async def __call__(
        self,
        principal: Principal,
        action: str,
        subject: str | None,
        *,
        why: str | None,
        what: Mapping[str, Any],
        outcome: str,
    ) -> None: ...


class AckRequest(BaseModel):
    """Body of ``POST /api/v1/alerts/{alert_id}/ack``."""

    note: str | None = Field(default=None, max_length=1000)


def sla_router(engine: SlaEngine, *, audit: AuditRecorder | None = None) -> APIRouter:
    """The SLA and alert endpoints, served by ``engine``; ``audit`` records control actions."""
    router = APIRouter(tags=["sla"], route_class=ControlRoute)
    viewer = Depends(require_role(Role.VIEWER))

    @router.get("/api/v1/sla", dependencies=[viewer], response_model=None, responses=ok(SlaStatus))
    def sla_status() -> dict[str, Any]:
        """Every rule's status from the last evaluation (``evaluated_at`` null before it)."""
        statuses = {s.rule_id: s.to_dict() for s in engine.status()}
        rules = []
        for rule in engine.rules:
            rules.append(
                statuses.get(rule.id)
                or {
                    "rule_id": rule.id,
                    "name": rule.name,
                    "kind": rule.indicator.kind,
                    "impact_tier": rule.impact_tier.value,
                    "objective": rule.objective,
                    "evaluated_at": None,
                }
            )
        return {"rules": rules, "last_tick_seconds": engine.last_tick_seconds}

    @router.get(
        "/api/v1/sla/{rule_id}/history",
        dependencies=[viewer],
        response_model=None,
        responses={**ok(SlaHistory), **not_found()},
    )
    async def sla_history(
        rule_id: str,
        since: IsoDateTime | None = None,
        until: IsoDateTime | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1440,
    ) -> dict[str, Any]:
        """Stored evaluations of one rule, newest first, one per minute."""
        rule = engine.rule(rule_id)
        if rule is None:
            raise NotFoundError(f"no SLA rule {rule_id!r}")
        history = await engine.history(rule_id, since, until, limit)
        return {"rule_id": rule_id, "objective": rule.objective, "history": history}

    @router.get(
        "/api/v1/alerts", dependencies=[viewer], response_model=None, responses=ok(AlertPage)
    )
    def list_alerts(
        state: Literal["firing", "acknowledged", "resolved"] | None = None,
        include_resolved: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Alerts ranked by risk tier (``at_risk`` before ``latent``), then value at risk,
        then impact score, highest first (not by time)."""
        alerts = engine.alerts(state=state, include_resolved=include_resolved, limit=limit)
        return {"alerts": [a.to_dict() for a in alerts]}

    @router.get(
        "/api/v1/alerts/{alert_id}/changes",
        dependencies=[viewer],
        response_model=None,
        responses={**ok(AlertChanges), **not_found()},
    )
    async def alert_changes(alert_id: str) -> dict[str, Any]:
        """Every state change of an alert with who and when."""
        changes = await engine.alert_changes(alert_id)
        if not changes:
            raise NotFoundError(f"no alert {alert_id!r}")
        return {"alert_id": alert_id, "changes": changes}

    @router.post(
        "/api/v1/alerts/{alert_id}/ack",
        response_model=None,
        responses={**ok(Alert), **responses(404, 409)},
    )
    async def acknowledge(
        alert_id: str,
        principal: Annotated[Principal, Depends(require_role(Role.OPERATOR))],
        body: AckRequest | None = None,
    ) -> dict[str, Any]:
        """Acknowledge a firing alert (operator role); recorded with who and when."""
        note = body.note if body else None
        try:
            alert = await engine.acknowledge(alert_id, principal.name, note)
        except (AlertNotFound, AlertStateError) as exc:
            if audit is not None:
                await audit(
                    principal,
                    "alert.acknowledge",
                    alert_id,
                    why=note,
                    what={},
                    outcome=f"refused: {exc.message}",
                )
            raise  # AlertNotFound answers 404, AlertStateError 409 (their http_status)
        answer = alert.to_dict()
        if audit is not None:
            keys = ("rule_id", "severity", "impact_tier", "opened_at", "value_at_risk", "currency")
            what = {k: answer.get(k) for k in keys}
            await audit(
                principal,
                "alert.acknowledge",
                alert_id,
                why=note,
                what=what,
                outcome="acknowledged",
            )
        return answer

    @router.get(
        "/api/v1/reports/sla",
        dependencies=[viewer],
        response_model=None,
        responses={
            200: {
                "model": SlaReport,
                "description": "The report as JSON (``format=json``), CSV or PDF.",
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def sla_report(
        period: Literal["last-7d", "last-30d", "week", "month", "custom"] = "last-7d",
        start: IsoDateTime | None = None,
        end: IsoDateTime | None = None,
        format: Literal["json", "csv", "pdf"] = "json",
    ) -> Response | dict[str, Any]:
        """The executive SLA report for a period, as JSON, CSV or PDF."""
        try:
            lo, hi, label = resolve_period(period, engine.clock(), start, end)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        report = await build_report(engine, lo, hi, label)
        name = f"sla-report-{lo:%Y%m%d}-{hi:%Y%m%d}"
        if format == "csv":
            return Response(
                report_csv(report),
                media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        if format == "pdf":
            return Response(
                report_pdf(report),
                media_type="application/pdf",
                headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
            )
        return report.to_dict()

    return router
