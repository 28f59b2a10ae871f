"""The executive SLA report: objective vs achieved per business SLA, the trend
against the previous period, error budget used, the top incidents by impact, and the
reconciliation drift of the period against the previous one (when the reconcile
plug-in keeps runs in the lineage).

Rendered as JSON (for the dashboard), CSV and PDF (reportlab, with a matplotlib chart).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from ._drift import drift_as_of, runs_between
from ._engine import SlaEngine
from ._indicators import count_totals
from ._maths import budget_consumed
from ._sql import execute

__all__ = [
    "DRIFT_PERIODS",
    "PERIODS",
    "DriftPeriod",
    "DriftSection",
    "Incident",
    "ReportRow",
    "SlaReport",
    "build_report",
    "drift_lines",
    "report_csv",
    "report_pdf",
    "resolve_period",
]

PERIODS = ("last-7d", "last-30d", "week", "month", "custom")
#: The reconciliation periods whose runs the drift section reads (a custom run is an
#: investigation, not the books' state).
DRIFT_PERIODS = ("day", "week", "month")


def resolve_period(
    period: str, now: datetime, start: datetime | None = None, end: datetime | None = None
) -> tuple[datetime, datetime, str]:
    """``(start, end, label)`` of a report period.

    ``last-7d``/``last-30d`` end now; ``week`` is the last complete Monday-to-Monday
    week and ``month`` the last complete calendar month (UTC); ``custom`` needs both
    ``start`` and ``end``. Raises ``ValueError`` with the reason otherwise.
    """
    now = now.astimezone(UTC)
    if period == "last-7d":
        return now - timedelta(days=7), now, "Last 7 days"
    if period == "last-30d":
        return now - timedelta(days=30), now, "Last 30 days"
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        this_monday = midnight - timedelta(days=midnight.weekday())
        first = this_monday - timedelta(days=7)
        return first, this_monday, f"Week of {first:%Y-%m-%d}"
    if period == "month":
        this_month = midnight.replace(day=1)
        first = (this_month - timedelta(days=1)).replace(day=1)
        return first, this_month, f"{first:%B %Y}"
    if period == "custom":
        if start is None or end is None:
            raise ValueError("a custom period needs both start and end")
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        if end <= start:
            raise ValueError("end must be after start")
        if end - start > timedelta(days=366):
            raise ValueError("a custom period may span at most 366 days")
        return start, end, f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")


@dataclass
class ReportRow:
    rule_id: str
    name: str
    impact_tier: str
    objective: float
    achieved: float | None
    previous: float | None
    trend: float | None
    budget_used: float | None
    good: int
    bad: int
    met: bool | None


@dataclass
class Incident:
    alert_id: str
    rule_id: str
    rule_name: str
    severity: str
    impact_tier: str
    opened_at: datetime
    resolved_at: datetime | None
    duration_s: float
    value_at_risk: float
    customers_affected: int
    score: float
    summary: str
    currency: str | None = None


@dataclass
class DriftPeriod:
    """Reconciliation in one report period: the runs started in it, and what the latest
    completed run of each reconciliation period (day, week, month) finished in it left
    open at its end (explanations made by then count)."""

    start: datetime
    end: datetime
    runs: int
    failed_runs: int
    #: ``None``: no run completed in the period (nothing to say about drift).
    open_discrepancies: int | None
    customers_affected: int
    #: ``{currency: amount}`` as exact decimal text, e.g. ``{"USD": "1500.00"}``.
    value_at_risk: dict[str, str] = field(default_factory=dict)


@dataclass
class DriftSection:
    """Drift in the report's period against the previous one of equal length."""

    current: DriftPeriod
    previous: DriftPeriod
    #: Open discrepancies now minus then (``None`` when either has no completed run).
    change_open: int | None
    #: Per currency in either period: the value at risk now minus then.
    change_value_at_risk: dict[str, str] = field(default_factory=dict)


@dataclass
class SlaReport:
    title: str
    period: str
    start: datetime
    end: datetime
    generated_at: datetime
    rows: list[ReportRow] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    #: ``None`` when the lineage holds no reconciliation tables (no reconcile plug-in).
    drift: DriftSection | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("start", "end", "generated_at"):
            data[key] = getattr(self, key).isoformat()
        if data["drift"] is not None:
            for part in ("current", "previous"):
                for key in ("start", "end"):
                    data["drift"][part][key] = data["drift"][part][key].isoformat()
        for incident in data["incidents"]:
            for key in ("opened_at", "resolved_at"):
                if incident[key] is not None:
                    incident[key] = incident[key].isoformat()
        return data


def _drift_period(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, now: datetime
) -> DriftPeriod | None:
    counted = runs_between(con, start, end)
    if counted is None:
        return None
    drift = drift_as_of(con, min(end, now), periods=DRIFT_PERIODS, since=start)
    return DriftPeriod(
        start=start,
        end=end,
        runs=counted[0],
        failed_runs=counted[1],
        open_discrepancies=None if drift is None else drift.open,
        customers_affected=0 if drift is None else drift.customers,
        value_at_risk={} if drift is None else {c: str(v) for c, v in drift.value_at_risk.items()},
    )


def _drift_section(current: DriftPeriod, previous: DriftPeriod) -> DriftSection:
    change = (
        None
        if current.open_discrepancies is None or previous.open_discrepancies is None
        else current.open_discrepancies - previous.open_discrepancies
    )
    currencies = sorted({*current.value_at_risk, *previous.value_at_risk})
    deltas = {
        c: str(
            Decimal(current.value_at_risk.get(c, "0")) - Decimal(previous.value_at_risk.get(c, "0"))
        )
        for c in currencies
    }
    return DriftSection(current, previous, change, deltas)


def _ratio(good: int, bad: int) -> float | None:
    return None if good + bad == 0 else good / (good + bad)


async def build_report(
    engine: SlaEngine, start: datetime, end: datetime, label: str, *, top: int = 10
) -> SlaReport:
    """Compute the report for ``[start, end)`` straight from the lineage."""
    now = engine.clock()
    previous_start = start - (end - start)

    def read(
        con: duckdb.DuckDBPyConnection,
    ) -> tuple[list[ReportRow], list[tuple[Any, ...]], DriftSection | None]:
        rows: list[ReportRow] = []
        for rule in engine.rules:
            good, bad = count_totals(con, rule, start, end, now)
            p_good, p_bad = count_totals(con, rule, previous_start, start, now)
            achieved, previous = _ratio(good, bad), _ratio(p_good, p_bad)
            rows.append(
                ReportRow(
                    rule_id=rule.id,
                    name=rule.name,
                    impact_tier=rule.impact_tier.value,
                    objective=rule.objective,
                    achieved=achieved,
                    previous=previous,
                    trend=None if achieved is None or previous is None else achieved - previous,
                    budget_used=None
                    if achieved is None
                    else budget_consumed(good, bad, rule.objective),
                    good=good,
                    bad=bad,
                    met=None if achieved is None else achieved >= rule.objective,
                )
            )
        incidents = execute(
            con,
            """SELECT alert_id, rule_id, rule_name, severity, impact_tier, opened_at,
                      resolved_at, peak_value_at_risk, customers_affected, score, summary,
                      currency
               FROM sla_alerts
               WHERE opened_at <= ? AND coalesce(resolved_at, ?) >= ?
               ORDER BY score DESC, peak_value_at_risk DESC LIMIT ?""",
            [end, now, start, top],
        ).fetchall()
        current = _drift_period(con, start, end, now)
        before = _drift_period(con, previous_start, start, now)
        drift = None if current is None or before is None else _drift_section(current, before)
        return rows, incidents, drift

    rows, found, drift = await engine.lineage.read(read)
    incidents = [
        Incident(
            alert_id=a,
            rule_id=r,
            rule_name=n,
            severity=sev,
            impact_tier=tier,
            opened_at=opened,
            resolved_at=resolved,
            duration_s=((resolved or now) - opened).total_seconds(),
            value_at_risk=float(value),
            customers_affected=int(customers),
            score=float(score),
            summary=summary,
            currency=currency,
        )
        for a, r, n, sev, tier, opened, resolved, value, customers, score, summary, currency in (
            found
        )
    ]
    return SlaReport("Executive SLA report", label, start, end, now, rows, incidents, drift)


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _pts(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.2f} pts"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _money(value: float, currency: str | None) -> str:
    return f"{currency} {value:,.2f}" if currency else f"{value:,.2f}"


def _csv_pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.4f}"


def report_csv(report: SlaReport) -> bytes:
    """Two sections: one row per SLA, then the top incidents."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["report", report.title, report.period, report.start.isoformat(),
                report.end.isoformat()])  # fmt: skip
    # Every share in percent, as the PDF and the page print them (a ratio column beside
    # a percent one read 32.77 where the PDF said 3277.5 %).
    w.writerow(["rule_id", "name", "impact_tier", "objective_pct", "achieved_pct",
                "previous_pct", "trend_pts", "error_budget_used_pct", "good", "bad",
                "met"])  # fmt: skip
    for r in report.rows:
        w.writerow([
            r.rule_id, r.name, r.impact_tier, _csv_pct(r.objective), _csv_pct(r.achieved),
            _csv_pct(r.previous), _csv_pct(r.trend), _csv_pct(r.budget_used),
            r.good, r.bad, "" if r.met is None else str(r.met).lower(),
        ])  # fmt: skip
    w.writerow([])
    w.writerow(["incident", "rule_id", "severity", "impact_tier", "opened_at", "resolved_at",
                "duration_s", "value_at_risk", "currency", "customers_affected",
                "score"])  # fmt: skip
    for i in report.incidents:
        w.writerow([
            i.alert_id, i.rule_id, i.severity, i.impact_tier, i.opened_at.isoformat(),
            "" if i.resolved_at is None else i.resolved_at.isoformat(),
            f"{i.duration_s:.0f}", f"{i.value_at_risk:.2f}", i.currency or "",
            i.customers_affected, f"{i.score:.1f}",
        ])  # fmt: skip
    if report.drift is not None:
        d = report.drift
        w.writerow([])
        w.writerow(["drift", "period_start", "period_end", "runs", "failed_runs",
                    "open_discrepancies", "customers_affected"])  # fmt: skip
        for name, p in (("current", d.current), ("previous", d.previous)):
            w.writerow([
                name, p.start.isoformat(), p.end.isoformat(), p.runs, p.failed_runs,
                "" if p.open_discrepancies is None else p.open_discrepancies,
                p.customers_affected,
            ])  # fmt: skip
        w.writerow([])
        w.writerow(["drift_currency", "value_at_risk", "previous_value_at_risk", "change"])
        for currency, change in d.change_value_at_risk.items():
            w.writerow([
                currency, d.current.value_at_risk.get(currency, "0"),
                d.previous.value_at_risk.get(currency, "0"), change,
            ])  # fmt: skip
    return out.getvalue().encode()


def drift_lines(drift: DriftSection) -> list[list[str]]:
    """The drift table as the PDF and the dashboard print it: a header, then one line
    per figure (this period, the previous one, the change)."""
    now, then = drift.current, drift.previous

    def count(value: int | None) -> str:
        return "no run" if value is None else f"{value:,}"

    change = "n/a" if drift.change_open is None else f"{drift.change_open:+,}"
    lines = [
        ["", "This period", "Previous period", "Change"],
        ["Runs (failed)", f"{now.runs:,} ({now.failed_runs:,})",
         f"{then.runs:,} ({then.failed_runs:,})", f"{now.runs - then.runs:+,}"],
        ["Open discrepancies", count(now.open_discrepancies), count(then.open_discrepancies),
         change],
        ["Customers affected", f"{now.customers_affected:,}", f"{then.customers_affected:,}",
         f"{now.customers_affected - then.customers_affected:+,}"],
    ]  # fmt: skip
    for currency, delta in drift.change_value_at_risk.items():
        lines.append([
            f"Value at risk ({currency})",
            _money(float(now.value_at_risk.get(currency, "0")), currency),
            _money(float(then.value_at_risk.get(currency, "0")), currency),
            f"{currency} {float(delta):+,.2f}",
        ])  # fmt: skip
    return lines


def _chart_png(report: SlaReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display here; render to a buffer
    import matplotlib.pyplot as plt

    rows = list(reversed(report.rows))
    names = [r.name for r in rows]
    measured = [r.achieved for r in rows if r.achieved is not None]
    low = max(0.0, min([*(a * 100 for a in measured), *(r.objective * 100 for r in rows)]) - 2)
    fig, ax = plt.subplots(figsize=(7.2, 0.34 * len(rows) + 1.3), dpi=150)
    for y, r in enumerate(rows):
        if r.achieved is None:
            ax.text(low + 0.2, y, "no traffic", va="center", fontsize=6, color="#757575")
            continue
        colour = "#2e7d32" if r.met else "#c62828"
        ax.barh(y, r.achieved * 100 - low, left=low, color=colour, height=0.6)
        ax.text(max(r.achieved * 100, low) + 0.1, y, f" {r.achieved * 100:.2f}%", va="center",
                fontsize=6)  # fmt: skip
    ax.scatter([r.objective * 100 for r in rows], range(len(rows)), marker="|", s=260,
               color="black", zorder=3, label="objective")  # fmt: skip
    ax.set_yticks(range(len(rows)), names)
    ax.set_xlim(low, 100.5)
    ax.set_xlabel("achieved: good share of SLI events in the period (%)", fontsize=7)
    ax.set_title("Achieved vs objective (green met, red missed)", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def report_pdf(report: SlaReport) -> bytes:
    """A two-part PDF: the SLA table with a chart, then the top incidents."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=landscape(A4), leftMargin=1.5 * cm, rightMargin=1.5 * cm,
        topMargin=1.2 * cm, bottomMargin=1.2 * cm, title=report.title,
    )  # fmt: skip
    met = sum(1 for r in report.rows if r.met)
    measured = sum(1 for r in report.rows if r.met is not None)
    story: list[Any] = [
        Paragraph(f"{report.title}: {report.period}", styles["Title"]),
        Paragraph(
            f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC. "
            f"{met} of {measured} measured SLAs met their objective. "
            f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC.",
            styles["Normal"],
        ),
        Spacer(1, 0.3 * cm),
    ]
    table = [["SLA", "Impact tier", "Objective", "Achieved", "Previous", "Trend",
              "Budget used", "Good", "Bad"]]  # fmt: skip
    for r in report.rows:
        table.append([
            r.name, r.impact_tier.replace("_", " "), _pct(r.objective), _pct(r.achieved),
            _pct(r.previous), _pts(r.trend), _pct(r.budget_used, 1), f"{r.good:,}", f"{r.bad:,}",
        ])  # fmt: skip
    style = TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#263238")),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
        ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
    ])  # fmt: skip
    for index, r in enumerate(report.rows, start=1):
        if r.met is False:
            style.add("TEXTCOLOR", (3, index), (3, index), colors.HexColor("#c62828"))
    story.append(Table(table, style=style, repeatRows=1))
    story.append(Spacer(1, 0.4 * cm))
    png = _chart_png(report)
    chart = Image(io.BytesIO(png))
    ratio = chart.imageHeight / chart.imageWidth
    chart.drawWidth, chart.drawHeight = 15 * cm, 15 * cm * ratio
    story.append(chart)
    story.append(Paragraph("Top incidents by business impact", styles["Heading2"]))
    if report.incidents:
        rows = [["SLA", "Severity", "Opened (UTC)", "Duration", "Value at risk", "Customers",
                 "Score"]]  # fmt: skip
        for i in report.incidents:
            rows.append([
                i.rule_name, i.severity, f"{i.opened_at:%Y-%m-%d %H:%M}",
                _duration(i.duration_s) + ("" if i.resolved_at else " (open)"),
                _money(i.value_at_risk, i.currency), str(i.customers_affected),
                f"{i.score:.1f}",
            ])  # fmt: skip
        story.append(Table(rows, style=TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#263238")),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("ALIGN", (3, 1), (-1, -1), "RIGHT"),
        ]), repeatRows=1))  # fmt: skip
    else:
        story.append(Paragraph("No SLA alerts in this period.", styles["Normal"]))
    story.append(Paragraph("Reconciliation drift", styles["Heading2"]))
    if report.drift is not None:
        story.append(Table(drift_lines(report.drift), style=TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#263238")),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ]), repeatRows=1))  # fmt: skip
        story.append(Paragraph(
            "Open discrepancies and value at risk: what the latest completed run of each "
            "reconciliation period (day, week, month) finished in the period left open at "
            "its end, each discrepancy once; explained ones do not count.",
            styles["Italic"],
        ))  # fmt: skip
    else:
        story.append(Paragraph("Reconciliation is not installed.", styles["Normal"]))
    story.append(Spacer(1, 0.3 * cm))
    story.append(Paragraph(
        "Achieved: good share of SLI events in the period. Trend: change in percentage points "
        "against the previous period of equal length. Budget used: share of the period's "
        "error budget (1 - objective) spent; over 100% means the objective was missed.",
        styles["Italic"],
    ))  # fmt: skip
    doc.build(story)
    return buf.getvalue()
