"""Pure pieces of the dashboard: the timeline builder, formatting, tables, navigation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboards._format import (
    format_age,
    format_count,
    format_duration_ms,
    format_money,
    format_time,
    to_decimal,
)
from dashboards._nav import discover_pages, title_of, url_path_for
from dashboards._overview import count_rows, state_rows
from dashboards._tables import event_table, shared_currency, transaction_table
from dashboards._timeline import (
    STATUS_COLOURS,
    STATUS_SHAPES,
    event_rows,
    lane_of,
    timeline_chart,
)


def ev(n, source, target, status="ok", cause=None, **extra):
    return {
        "event_id": f"e{n}",
        "causation_id": cause,
        "source": source,
        "target": target,
        "kind": "order.created",
        "step": f"step.{n}",
        "status": status,
        "attempt": 1,
        "event_time": f"2026-11-26T09:00:0{n}Z",
        "trace_id": f"t{n}",
        "since_cause_ms": 1500.0 if cause else None,
        **extra,
    }


# -- timeline -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "lane"),
    [
        ("crm", "interlock", "crm"),
        ("interlock", "erp", "erp"),
        ("billing", "interlock", "billing"),
        ("interlock", "interlock", "interlock"),
        ("interlock", None, "interlock"),
        ("erp", "billing", "erp"),
    ],
)
def test_lane_is_where_the_step_happened(source, target, lane):
    assert lane_of({"source": source, "target": target}) == lane


LANES = ["crm", "interlock", "erp", "billing", "support"]


def test_chart_has_a_lane_per_system_present_in_the_declared_order():
    events = [
        ev(1, "support", "interlock"),
        ev(2, "interlock", "billing", cause="e1"),
        ev(3, "crm", "interlock"),
        ev(4, "interlock", "interlock", status="dead_lettered", cause="e2"),
    ]
    spec = timeline_chart(events, lanes=LANES).to_dict()
    links, points = spec["layer"]
    y = points["encoding"]["y"]
    assert y["scale"]["domain"] == ["crm", "interlock", "billing", "support"]
    assert spec["height"] == 120 + 4 * 45
    assert links["mark"]["type"] == "line"
    assert links["encoding"]["detail"]["field"] == "link"
    assert points["mark"]["type"] == "point"


def test_chart_colours_and_shapes_are_fixed_per_status():
    spec = timeline_chart([ev(1, "crm", "interlock")]).to_dict()
    enc = spec["layer"][1]["encoding"]
    assert enc["color"]["scale"]["domain"] == list(STATUS_COLOURS)
    assert enc["color"]["scale"]["range"] == list(STATUS_COLOURS.values())
    assert enc["shape"]["scale"]["range"] == [STATUS_SHAPES[s] for s in STATUS_COLOURS]
    # Problem states are not circles, and are drawn larger.
    assert {STATUS_SHAPES[s] for s in ("failed", "retrying", "dead_lettered")}.isdisjoint(
        {"circle"}
    )
    assert enc["size"]["condition"] == {"test": "datum.problem", "value": 260}
    titles = [t["title"] for t in enc["tooltip"]]
    for wanted in ("kind", "step", "attempt", "latency since cause", "trace ID"):
        assert wanted in titles


def test_unknown_status_and_system_still_draw():
    spec = timeline_chart([ev(1, "warehouse", "interlock", status="paused")]).to_dict()
    enc = spec["layer"][1]["encoding"]
    assert enc["y"]["scale"]["domain"] == ["warehouse"]
    assert enc["color"]["scale"]["domain"][-1] == "paused"


def test_event_frame_rows_links_and_problem_flags():
    events = [
        ev(1, "crm", "interlock"),
        ev(
            2,
            "interlock",
            "erp",
            status="retrying",
            cause="e1",
            error={"reason": "rate_limit", "message": "429"},
        ),
        ev(3, "interlock", "erp", status="failed", cause="missing-cause"),
    ]
    rows = event_rows(events)
    assert [r["lane"] for r in rows] == ["crm", "erp", "erp"]
    assert [r["problem"] for r in rows] == [False, True, True]
    assert [r["since_cause"] for r in rows] == ["—", "1.5 s", "1.5 s"]
    assert rows[1]["error"] == "rate_limit: 429"
    assert rows[0]["time"] == "2026-11-26T09:00:01"
    spec = timeline_chart(events).to_dict()
    link_rows = spec["datasets"][spec["layer"][0]["data"]["name"]]
    # Only the link whose cause is in this transaction is drawn.
    assert link_rows == [
        {"link": "e2", "end": 0, "time": "2026-11-26T09:00:01", "lane": "crm"},
        {"link": "e2", "end": 1, "time": "2026-11-26T09:00:02", "lane": "erp"},
    ]


def test_the_shipped_lanes_cover_every_system():
    from _hosts import SYSTEMS

    from tracing import System

    assert {s.name for s in SYSTEMS} == {s.value for s in System}


# -- formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        ("1250", "eur", "EUR 1,250.00"),
        ("98000.5", "USD", "USD 98,000.50"),
        (Decimal("0.005"), None, "0.01"),
        (None, "EUR", "—"),
        ("not money", "EUR", "—"),
        ("NaN", "EUR", "—"),
    ],
)
def test_format_money(value, currency, text):
    assert format_money(value, currency) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "—"),
        (0.4, "0.4 ms"),
        (350, "350 ms"),
        (1250, "1.2 s"),
        (125_000, "2 min 5 s"),
        (7_380_000, "2 h 3 min"),
        (90_000_000, "1 d 1 h"),
        (-2000, "-2.0 s"),
    ],
)
def test_format_duration(ms, text):
    assert format_duration_ms(ms) == text


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_format_duration_never_fails(ms):
    assert format_duration_ms(ms)


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, max_value=10**12, min_value=-(10**12)
    )
)
def test_money_round_trips(value):
    text = format_money(str(value), "EUR")
    assert to_decimal(text.removeprefix("EUR ").replace(",", "")) == value


def test_times_and_counts():
    assert format_time("2026-11-26T17:25:40.123Z") == "2026-11-26 17:25:40 UTC"
    assert format_time("2026-11-26T18:25:40+01:00") == "2026-11-26 17:25:40 UTC"
    assert format_time("garbage") == "—"
    now = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)
    assert format_age("2026-11-26T17:25:00Z", now) == "5 min 0 s ago"
    assert format_age(None, now) == "—"
    assert format_count(12345, "events") == "12,345 events"
    assert format_count(None) == "—"


# -- tables -------------------------------------------------------------------------------


def test_transaction_table_keeps_numbers_sortable_and_links():
    (row,) = transaction_table(
        [
            {
                "correlation_id": "c/1",
                "amount": "10.50",
                "currency": "EUR",
                "customer_name": None,
                "customer_id": "C-1",
                "last_system": "erp",
                "last_kind": "order.created",
                "last_status": "failed",
                "started_at": "2026-11-26T09:00:00Z",
            }
        ]
    )
    assert row["transaction"] == "./Transactions?cid=c%2F1"
    assert row["amount"] == 10.5
    assert row["customer"] == "C-1"
    assert row["last step"] == "erp / order.created / failed"
    assert row["started"] == datetime(2026, 11, 26, 9, 0)


def test_event_table_and_currency():
    (row,) = event_table([ev(1, "interlock", "erp", duration_ms=120.0)])
    assert row["system"] == "erp"
    assert row["duration"] == "120 ms"
    assert shared_currency([{"currency": "eur"}, {"currency": "EUR"}]) == "EUR"
    assert shared_currency([{"currency": "EUR"}, {"currency": "USD"}]) is None
    assert shared_currency([], {"currency": "chf"}) == "CHF"


def test_overview_frames():
    rows = state_rows({"transactions_by_state": {"completed": 4, "archived": 1}})
    assert [r["state"] for r in rows] == [
        "in_progress",
        "completed",
        "failed",
        "dead_lettered",
        "stalled",
        "archived",
    ]
    assert [r["transactions"] for r in rows] == [0, 4, 0, 0, 0, 1]
    assert count_rows({"crm": 1, "erp": 5}, "system") == [
        {"system": "erp", "events": 5},
        {"system": "crm", "events": 1},
    ]


# -- navigation ---------------------------------------------------------------------------


def test_pages_are_every_file_sorted_with_titles(tmp_path: Path):
    (tmp_path / "02_Transactions.py").write_text('TITLE = "Transactions"\n')
    (tmp_path / "01_Overview.py").write_text('"""doc"""\nTITLE: str = "Overview"\n')
    (tmp_path / "30_Dead_letters.py").write_text("import streamlit\n")
    (tmp_path / "25_Broken.py").write_text("def (:\n")
    (tmp_path / "_helpers.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    pages = discover_pages(tmp_path)
    assert [(p.path.name, p.title, p.url_path) for p in pages] == [
        ("01_Overview.py", "Overview", "Overview"),
        ("02_Transactions.py", "Transactions", "Transactions"),
        ("25_Broken.py", "Broken", "Broken"),
        ("30_Dead_letters.py", "Dead letters", "Dead_letters"),
    ]


def test_shipped_pages_and_the_transactions_url(tmp_path: Path):
    names = [p.path.name for p in discover_pages()]
    assert names[:2] == ["01_Overview.py", "02_Transactions.py"]
    assert url_path_for(Path("02_Transactions.py")) == "Transactions"
    assert title_of(tmp_path / "missing.py") == "missing"


def test_time_axis_shows_dates_only_for_orders_spanning_days():
    same_day = timeline_chart([ev(1, "crm", "interlock"), ev(2, "interlock", "erp")])
    assert same_day.to_dict()["layer"][1]["encoding"]["x"]["axis"]["format"] == "%H:%M:%S"
    later = ev(3, "billing", "interlock")
    later["event_time"] = "2026-12-24T09:00:00Z"
    spanning = timeline_chart([ev(1, "crm", "interlock"), later])
    assert spanning.to_dict()["layer"][1]["encoding"]["x"]["axis"]["format"] == "%m-%d %H:%M"


# -- Transaction summary and customer names -----------------------------------------------


def test_customer_of_prefers_the_stored_name_then_the_order_payload_then_the_id():
    from dashboards._lineage_view import customer_of

    order = {"kind": "order.created", "payload": {"customer": {"name": "Globex Ltd"}}}
    other = {"kind": "opportunity.closed_won", "payload": {"customer_name": "Old name"}}
    assert customer_of({"customer_name": "Acme GmbH", "customer_id": "001"}) == "Acme GmbH"
    assert customer_of({"customer_id": "001", "events": [other, order]}) == "Globex Ltd"
    assert customer_of({"customer_id": "001", "events": [other]}) == "Old name"
    # No name anywhere: the account ID, never an invented name.
    blank = {"kind": "order.created", "payload": {"customer": {"name": "  "}}}
    assert customer_of({"customer_name": "", "customer_id": "001", "events": [blank]}) == "001"
    assert customer_of({}) == "unknown customer"


def test_summary_items_are_short_labels_with_full_values():
    from dashboards._transaction_view import summary_items

    detail = {
        "order_ref": "006Wz000000000MIAQ",
        "customer_id": "001Wz000000000LIAQ",
        "amount": "11265",
        "currency": "usd",
        "state": "dead_lettered",
        "events": [{}, {}],
        "failed_count": 0,
        "dead_letter_count": 1,
    }
    assert summary_items(detail) == [
        ("Order", "006Wz000000000MIAQ"),
        ("Customer", "001Wz000000000LIAQ"),
        ("Amount", "USD 11,265.00"),
        ("State", "dead_lettered"),
        ("Events", "2 · 1 dead-lettered"),
    ]


def test_waiting_line_names_the_step_and_flags_a_stalled_one():
    from dashboards._transaction_view import waiting_line

    assert waiting_line({"waiting_step": None}) is None
    detail = {
        "state": "in_progress",
        "waiting_step": "erp.order.confirm",
        "waiting_since": "2026-06-01T09:01:00Z",
        "due_at": "2026-06-01T09:16:00Z",
    }
    assert waiting_line(detail) == (
        "Waits for `erp.order.confirm` since 2026-06-01 09:01:00 UTC (due 2026-06-01 09:16:00 UTC)"
    )
    stalled = waiting_line({**detail, "state": "stalled"})
    assert stalled is not None and "overdue with no open dead letter" in stalled


def test_drift_rows_compare_the_period_with_the_previous_one():
    from dashboards._report import drift_rows

    rows = drift_rows({
        "current": {"runs": 3, "failed_runs": 1, "open_discrepancies": 2,
                    "customers_affected": 2, "value_at_risk": {"USD": "1500.00"}},
        "previous": {"runs": 1, "failed_runs": 0, "open_discrepancies": 4,
                     "customers_affected": 3, "value_at_risk": {"USD": "1600.00"}},
        "change_open": -2,
        "change_value_at_risk": {"USD": "-100.00"},
    })  # fmt: skip
    by = {r["Figure"]: r for r in rows}
    assert by["Runs (failed)"] == {"Figure": "Runs (failed)", "This period": "3 (1)",
                                   "Previous period": "1 (0)", "Change": "+2"}  # fmt: skip
    assert by["Open discrepancies"]["Change"] == "-2"
    assert by["Value at risk (USD)"]["Change"] == "USD -100.00"
    no_run = drift_rows({"current": {"open_discrepancies": None}, "previous": {}})
    assert no_run[1]["This period"] == "no run" and no_run[1]["Change"] == "no data"


def test_a_rule_with_no_data_says_so():
    from dashboards._sla import coverage_text

    rule = {"observed_minutes": 0, "window_minutes": 43_200, "no_data": True}
    assert coverage_text(rule) == "nothing of 30 d: no data"
