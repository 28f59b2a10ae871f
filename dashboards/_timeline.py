"""The swimlane timeline of one business transaction, as a pure function of its events.

One lane per system the transaction touched, in the lane order the control API
declares (``_data.systems()``: crm, interlock, erp, billing, support for the
shipped plug-ins), one mark per event coloured by status. Failed, retrying and
dead-lettered steps also get their own shape and a larger mark, so they stand out
without relying on colour alone. Thin grey lines join each event to its cause, so
the path of the order across the systems reads left to right.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import altair as alt

from ._format import format_duration_ms, parse_time

__all__ = [
    "STATUS_COLOURS",
    "STATUS_SHAPES",
    "event_rows",
    "lane_of",
    "timeline_chart",
]

#: Status -> colour; fixed so a status looks the same on every chart.
STATUS_COLOURS: dict[str, str] = {
    "ok": "#2e7d32",
    "retrying": "#f9a825",
    "failed": "#c62828",
    "dead_lettered": "#6a1b9a",
    "replayed": "#1565c0",
    "duplicate": "#9e9e9e",
}

#: Status -> Vega-Lite point shape; the problem states are not circles.
STATUS_SHAPES: dict[str, str] = {
    "ok": "circle",
    "retrying": "triangle-up",
    "failed": "cross",
    "dead_lettered": "square",
    "replayed": "diamond",
    "duplicate": "circle",
}

_PROBLEMS = frozenset({"failed", "retrying", "dead_lettered"})
_UNKNOWN_COLOUR = "#616161"

#: Height the x axis, its title and the legend take: Streamlit fits the whole chart into
#: the height, so without it a two-lane chart squeezes its lanes together.
_AXIS_ROOM = 120


def lane_of(event: Mapping[str, Any]) -> str:
    """The system an event happened in.

    A call out of Interlock (``interlock -> erp``) is drawn on the lane of the system
    it acted on; an inbound event (``crm -> interlock``) on the lane it came from;
    Interlock's own steps (retries scheduled, dead letters, no target) on ``interlock``.
    """
    source = str(event.get("source") or "interlock")
    target = event.get("target")
    if source == "interlock" and target and target != "interlock":
        return str(target)
    return source


def event_rows(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The events of one transaction as the rows the timeline draws (API order kept)."""
    rows: list[dict[str, Any]] = []
    for event in events:
        status = str(event.get("status") or "ok")
        error = event.get("error") or {}
        reason = error.get("reason") if isinstance(error, Mapping) else None
        time = parse_time(event.get("event_time"))
        rows.append(
            {
                "event_id": event.get("event_id"),
                "causation_id": event.get("causation_id"),
                "lane": lane_of(event),
                # Vega-Lite reads ISO strings; naive UTC keeps pandas and Altair agreeing.
                "time": time.replace(tzinfo=None).isoformat() if time else None,
                "kind": event.get("kind"),
                "step": event.get("step"),
                "status": status,
                "attempt": event.get("attempt") or 1,
                "since_cause": format_duration_ms(event.get("since_cause_ms")),
                "trace_id": event.get("trace_id") or "",
                "source": event.get("source"),
                "target": event.get("target") or "",
                "error": f"{reason}: {error.get('message', '')}" if reason else "",
                "problem": status in _PROBLEMS,
            }
        )
    return rows


def _lanes_present(rows: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[str]:
    present = {str(row["lane"]) for row in rows}
    known = [lane for lane in order if lane in present]
    return known + sorted(present - set(order))


def _links(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Two rows (cause end, effect end) per causation link with both ends in this
    transaction; a line per ``link`` joins them."""
    by_id = {row["event_id"]: row for row in rows}
    links: list[dict[str, Any]] = []
    for row in rows:
        cause = by_id.get(row["causation_id"]) if row["causation_id"] else None
        if cause is not None:
            link = row["event_id"]
            links.append({"link": link, "end": 0, "time": cause["time"], "lane": cause["lane"]})
            links.append({"link": link, "end": 1, "time": row["time"], "lane": row["lane"]})
    return links


def _time_format(rows: Sequence[Mapping[str, Any]]) -> str:
    """Axis labels to the second within a day; with the date when the order spans days."""
    times = [t for t in (parse_time(r["time"]) for r in rows) if t is not None]
    if times and (max(times) - min(times)).total_seconds() >= 86_400:
        return "%m-%d %H:%M"
    return "%H:%M:%S"


def timeline_chart(
    events: Sequence[Mapping[str, Any]],
    *,
    lanes: Sequence[str] = (),
    height_per_lane: int = 45,
) -> alt.LayerChart:
    """A swimlane chart of ``events`` (dicts as the control API returns them).

    The y axis holds the lanes present, in the order of ``lanes`` (the systems the
    control API lists; a lane it does not list comes after, by name); colour and shape encode
    the status with fixed scales (``STATUS_COLOURS``, ``STATUS_SHAPES``); the tooltip
    shows kind, step, attempt, latency since cause and trace ID.
    """
    rows = event_rows(events)
    lanes = _lanes_present(rows, lanes)
    statuses = list(STATUS_COLOURS) + sorted({r["status"] for r in rows} - set(STATUS_COLOURS))
    colours = [STATUS_COLOURS.get(s, _UNKNOWN_COLOUR) for s in statuses]
    shapes = [STATUS_SHAPES.get(s, "circle") for s in statuses]

    x = alt.X(
        "time:T",
        title="event time (UTC)",
        # Pixels of room at both ends, so the first and last marks are not cut in half.
        scale=alt.Scale(padding=14),
        axis=alt.Axis(format=_time_format(rows), labelOverlap=True),
    )
    y = alt.Y("lane:N", title=None, scale=alt.Scale(domain=lanes), sort=lanes)
    points = (
        alt.Chart({"values": rows})
        .mark_point(filled=True, opacity=0.9)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "status:N",
                title="status",
                scale=alt.Scale(domain=statuses, range=colours),
                # One row above the lanes: a legend at the side is taller than a short
                # chart and gets cut off.
                legend=alt.Legend(orient="top", direction="horizontal"),
            ),
            shape=alt.Shape("status:N", scale=alt.Scale(domain=statuses, range=shapes)),
            size=alt.condition("datum.problem", alt.value(260), alt.value(110)),
            tooltip=[
                alt.Tooltip("kind:N", title="kind"),
                alt.Tooltip("step:N", title="step"),
                alt.Tooltip("status:N", title="status"),
                alt.Tooltip("attempt:Q", title="attempt"),
                alt.Tooltip("since_cause:N", title="latency since cause"),
                alt.Tooltip("time:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S.%L"),
                alt.Tooltip("trace_id:N", title="trace ID"),
                alt.Tooltip("error:N", title="error"),
            ],
        )
    )
    links = (
        alt.Chart({"values": _links(rows)})
        .mark_line(color="#bdbdbd", strokeWidth=1)
        .encode(x=x, y=y, detail="link:N", order="end:Q")
    )
    height = _AXIS_ROOM + max(1, len(lanes)) * height_per_lane
    return alt.LayerChart(layer=[links, points], height=height)
