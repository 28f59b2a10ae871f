"""The reconciliation drift rule: its indicator reads the latest completed run per period
from the reconcile plug-in's tables, alerts with the value at risk it leaves open, feeds
the executive report's drift section, and reports no data without the tables."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from _sla_helpers import T0, TOKENS, FakeClock, api_app

from adapters.reconcile import Check, Discrepancy, Kind, Repair
from adapters.reconcile._store import DDL, explain, finish_run, start_run
from adapters.reconcile.plugin import RULE_FILE
from sla_rules import (
    Rule,
    RuleFileError,
    SlaEngine,
    build_report,
    load_rules,
    report_csv,
    report_pdf,
)
from sla_rules._indicators import drift_sample
from sla_rules._memory import DuckDBLineage
from sla_rules._report import drift_lines

(DRIFT,) = load_rules([RULE_FILE])


def item(key: str, amount: str, *, currency: str | None = "USD", customer: str = "001A",
         kind: Kind = Kind.MISSING) -> Discrepancy:  # fmt: skip
    return Discrepancy(
        discrepancy_id=f"d-{key}",
        check=Check.DEAL_TO_SALE,
        kind=kind,
        system="erp",
        key=key,
        customer_id=customer,
        value_at_risk=Decimal(amount),
        currency=currency,
        detail="no ERP sale",
        repair=Repair.REPLAY,
    )


def run(
    lineage: DuckDBLineage,
    run_id: str,
    period: str,
    finished: datetime,
    found: list[Discrepancy],
    *,
    error: str | None = None,
) -> None:
    con = lineage.con
    con.execute(DDL)
    start_run(con, run_id=run_id, period=period, start=finished - timedelta(days=1),
              end=finished, trigger="schedule", by="scheduler",
              at=finished - timedelta(seconds=30))  # fmt: skip
    finish_run(con, run_id, at=finished, found=found, error=error)


def drift_rule(**indicator: object) -> Rule:
    doc = DRIFT.model_dump()
    doc["indicator"] = {**doc["indicator"], **indicator}
    return Rule.model_validate(doc)


async def test_the_shipped_rule_reads_the_latest_run_of_each_period(lineage: DuckDBLineage):
    # An older day run's discrepancy was repaired since: only the latest day run counts.
    run(lineage, "r1", "day", T0 - timedelta(hours=3), [item("006X", "9999.00")])
    run(lineage, "r2", "day", T0 - timedelta(hours=1),
        [item("006A", "1500.00"), item("006B", "250.00", customer="001B")])  # fmt: skip
    # The month run finds 006A again (counted once) and one in EUR.
    eur = item("006C", "80.00", currency="EUR", customer="001C")
    run(lineage, "r3", "month", T0 - timedelta(hours=2), [item("006A", "1500.00"), eur])
    # A failed run, and a custom one (an investigation), are not the books' state.
    run(lineage, "r4", "day", T0 - timedelta(minutes=5), [], error="ERP down")
    run(lineage, "r5", "custom", T0 - timedelta(minutes=5), [item("006Z", "5.00")])

    sample = await lineage.read(lambda con: drift_sample(con, DRIFT, T0))
    assert sample is not None
    assert (sample.open_count, sample.stuck_customers, sample.good) == (3, 3, False)
    assert sample.stuck_value == Decimal("1830.00") and sample.stuck_currency == "mixed"
    assert sample.oldest_age_s == 7200.0  # the month run, two hours old

    # Explained discrepancies no longer count; a run finished after "now" is not seen yet.
    await lineage.write(
        lambda con: explain(con, "d-006C", reason="keyed by hand", by="olivia", at=T0)
    )
    run(lineage, "r6", "day", T0 + timedelta(minutes=1), [])
    sample = await lineage.read(lambda con: drift_sample(con, DRIFT, T0))
    assert sample is not None
    assert (sample.open_count, sample.stuck_value, sample.stuck_currency) == (
        2,
        Decimal("1750.00"),
        "USD",
    )
    # One minute later the clean day run is the latest; the month run still holds 006A.
    later = await lineage.read(lambda con: drift_sample(con, DRIFT, T0 + timedelta(minutes=2)))
    assert later is not None and (later.open_count, later.stuck_value) == (1, Decimal("1500.00"))


async def test_bounds_decide_a_good_minute(lineage: DuckDBLineage):
    run(lineage, "r1", "day", T0 - timedelta(hours=1),
        [item("006A", "1500.00"), item("006B", "250.00")])  # fmt: skip
    lenient = drift_rule(max_open=2, max_value_at_risk="2000")
    tight = drift_rule(max_open=2, max_value_at_risk="1000")
    good = await lineage.read(lambda con: drift_sample(con, lenient, T0))
    bad = await lineage.read(lambda con: drift_sample(con, tight, T0))
    assert good is not None and good.good
    assert bad is not None and not bad.good


async def test_drift_fires_an_alert_with_the_value_at_risk(lineage: DuckDBLineage):
    clock = FakeClock()
    engine = SlaEngine(lineage, [DRIFT], clock=clock)
    await engine.tick()
    clock.advance(seconds=30)
    run(lineage, "r1", "day", clock.now,
        [item("006A", "1500.00"), item("006B", "250.00", customer="001B"),
         item("006C", "0", kind=Kind.ORPHAN, customer="001B")])  # fmt: skip
    clock.advance(seconds=30)
    for _ in range(10):
        (status,) = await engine.tick()
        clock.advance(minutes=1)
    assert status.no_data is False and status.bad == 10 and status.good == 0
    assert status.details["open"] == 3.0 and status.details["value_at_risk"] == 1750.0
    assert status.firing == "page"  # every observed minute drifted
    (alert,) = engine.alerts()
    assert alert.rule_id == "reconciliation-drift" and alert.impact_tier == "revenue"
    assert (alert.value_at_risk, alert.currency) == (Decimal("1750.00"), "USD")
    assert (alert.customers_affected, alert.items) == (2, 3)
    assert "USD 1,750.00 at risk, 2 customers" in alert.summary

    # The next run finds nothing: the minutes turn good and the alert clears.
    run(lineage, "r2", "day", clock.now, [])
    for _ in range(30):
        clock.advance(minutes=1)
        (status,) = await engine.tick()
    assert status.details["open"] == 0.0 and status.firing is None


async def test_after_a_start_drift_has_no_data_until_a_run_completes(lineage: DuckDBLineage):
    # The latest run, with drift, was left by the previous process: not a reading yet.
    run(lineage, "r0", "day", T0 - timedelta(hours=1), [item("006A", "1500.00")])
    clock = FakeClock()
    engine = SlaEngine(lineage, [DRIFT], clock=clock)
    for _ in range(10):
        (status,) = await engine.tick()
        clock.advance(minutes=1)
    assert status.no_data is True and (status.good, status.bad) == (0, 0)
    assert status.firing is None and engine.alerts() == []
    # A run started now but not finished is no reading either.
    (status,) = await engine.tick()
    assert status.no_data is True
    # The first run that completes after the start is read, and so are the older ones.
    run(lineage, "r1", "month", clock.now, [item("006B", "20.00")])
    clock.advance(minutes=1)
    (status,) = await engine.tick()
    assert status.no_data is False and (status.good, status.bad) == (0, 1)
    assert status.details["open"] == 2.0 and status.details["value_at_risk"] == 1520.0


async def test_without_the_reconcile_tables_the_rule_has_no_data(lineage: DuckDBLineage):
    clock = FakeClock()
    engine = SlaEngine(lineage, [DRIFT], clock=clock)
    (status,) = await engine.tick()
    clock.advance(minutes=1)
    (status,) = await engine.tick()
    assert status.no_data is True and (status.good, status.bad) == (0, 0)
    assert status.details == {} and status.firing is None and engine.alerts() == []
    assert await lineage.read(lambda con: drift_sample(con, DRIFT, T0)) is None


async def test_only_failed_or_stale_runs_are_no_data(lineage: DuckDBLineage):
    run(lineage, "r1", "day", T0 - timedelta(minutes=5), [], error="ERP down")
    assert await lineage.read(lambda con: drift_sample(con, DRIFT, T0)) is None
    run(lineage, "r2", "month", T0 - timedelta(days=3), [item("006A", "10.00")])
    # Older than max_run_age (2d): stale, not read.
    assert await lineage.read(lambda con: drift_sample(con, DRIFT, T0)) is None
    fresh = await lineage.read(lambda con: drift_sample(con, drift_rule(max_run_age=None), T0))
    assert fresh is not None and fresh.open_count == 1


def seed_two_weeks(lineage: DuckDBLineage) -> None:
    week = timedelta(days=7)
    # The previous 7 days: one run, one USD discrepancy.
    run(lineage, "p1", "day", T0 - week - timedelta(days=2), [item("006P", "100.00")])
    # This period: three runs (one failed); the latest day run leaves two open, one in EUR.
    run(lineage, "c1", "day", T0 - timedelta(days=2), [item("006P", "100.00")])
    run(lineage, "c2", "day", T0 - timedelta(days=1), [], error="CRM down")
    eur = item("006E", "80.00", currency="EUR", customer="001E")
    run(lineage, "c3", "day", T0 - timedelta(hours=1), [item("006A", "1500.00"), eur])


async def test_the_report_shows_drift_against_the_previous_period(lineage: DuckDBLineage):
    seed_two_weeks(lineage)
    engine = SlaEngine(lineage, [DRIFT], clock=FakeClock())
    await engine.tick()
    transport = httpx.ASGITransport(app=api_app(engine))
    headers = {"Authorization": f"Bearer {TOKENS['viewer']}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://sla") as client:
        body = (
            await client.get("/api/v1/reports/sla", params={"period": "last-7d"}, headers=headers)
        ).json()
        drift = body["drift"]
        assert drift["current"]["runs"] == 3 and drift["current"]["failed_runs"] == 1
        assert drift["current"]["open_discrepancies"] == 2
        assert drift["current"]["value_at_risk"] == {"EUR": "80.00", "USD": "1500.00"}
        assert drift["current"]["customers_affected"] == 2
        assert drift["previous"]["runs"] == 1 and drift["previous"]["open_discrepancies"] == 1
        assert drift["previous"]["value_at_risk"] == {"USD": "100.00"}
        assert drift["change_open"] == 1
        assert drift["change_value_at_risk"] == {"EUR": "80.00", "USD": "1400.00"}
        assert drift["current"]["end"] == body["end"]

        response = await client.get(
            "/api/v1/reports/sla", params={"period": "last-7d", "format": "csv"}, headers=headers
        )
    lines = list(csv.reader(io.StringIO(response.text)))
    header = next(line for line in lines if line and line[0] == "drift")
    periods = {line[0]: dict(zip(header, line, strict=True)) for line in lines
               if line and line[0] in ("current", "previous")}  # fmt: skip
    assert periods["current"]["runs"] == "3" and periods["current"]["open_discrepancies"] == "2"
    assert periods["previous"]["open_discrepancies"] == "1"
    money = next(i for i, line in enumerate(lines) if line and line[0] == "drift_currency")
    assert lines[money + 1 : money + 3] == [
        ["EUR", "80.00", "0", "80.00"],
        ["USD", "1500.00", "100.00", "1400.00"],
    ]


async def test_the_report_says_no_run_and_no_reconciliation(lineage: DuckDBLineage):
    clock = FakeClock()
    engine = SlaEngine(lineage, [DRIFT], clock=clock)
    await engine.tick()
    start, end = T0 - timedelta(days=7), T0
    report = await build_report(engine, start, end, "Last 7 days")
    assert report.drift is None and report.to_dict()["drift"] is None
    assert not any(line and line[0] == "drift" for line in csv.reader(
        io.StringIO(report_csv(report).decode())))  # fmt: skip

    # Tables, but no completed run in the previous period: its drift is unknown.
    run(lineage, "c1", "day", T0 - timedelta(hours=1), [item("006A", "1500.00")])
    report = await build_report(engine, start, end, "Last 7 days")
    assert report.drift is not None
    assert report.drift.previous.open_discrepancies is None and report.drift.change_open is None
    lines = drift_lines(report.drift)
    assert lines[2] == ["Open discrepancies", "1", "no run", "n/a"]
    assert lines[4] == ["Value at risk (USD)", "USD 1,500.00", "USD 0.00", "USD +1,500.00"]


async def test_the_pdf_renders_with_the_drift_section(lineage: DuckDBLineage):
    seed_two_weeks(lineage)
    engine = SlaEngine(lineage, [DRIFT], clock=FakeClock())
    await engine.tick()
    report = await build_report(engine, T0 - timedelta(days=7), T0, "Last 7 days")
    assert report_pdf(report).startswith(b"%PDF")


def test_a_bad_drift_field_is_named(tmp_path):
    bad = tmp_path / "drift.yaml"
    bad.write_text(RULE_FILE.read_text().replace("max_open: 0", "max_open: -1"))
    with pytest.raises(RuleFileError) as negative:
        load_rules([bad])
    assert negative.value.rule == "reconciliation-drift"
    assert negative.value.field == "indicator.max_open"
    bad.write_text(RULE_FILE.read_text().replace("[day, week, month]", "[day, year]"))
    with pytest.raises(RuleFileError, match=r"indicator\.periods"):
        load_rules([bad])


async def test_a_deal_missing_in_several_systems_is_at_risk_once(lineage: DuckDBLineage):
    erp = item("006A", "1500.00").model_copy(update={"correlation_id": "c-1"})
    billing = erp.model_copy(update={"discrepancy_id": "d-006A-billing", "system": "billing"})
    run(lineage, "r1", "day", T0 - timedelta(minutes=5), [erp, billing])
    sample = await lineage.read(lambda con: drift_sample(con, DRIFT, T0))
    assert sample is not None
    assert (sample.open_count, sample.stuck_value) == (2, Decimal("1500.00"))
