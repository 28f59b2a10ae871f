"""A new user's walk through the control plane, page by page, against the whole control
API on loopback (collector + SLA + replay + explore routers, role tokens on every read):
each assertion is a rough edge that user saw, now fixed at its cause."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from _sample import OPEN, Chain
from stack_api import COMPLETED, DEAD, StackApi
from streamlit.testing.v1 import AppTest

from tracing import ErrorInfo, Event, Reason, Status, System

Opener = Callable[..., AppTest]
DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
TOKENS = {"viewer": "tok-viewer", "operator": "tok-operator", "approver": "tok-approver"}
#: A second order, dead-lettered at billing (a second replay needs a second dead letter).
DEAD_BILLING = "cid-dl-901"
DUPLICATED = "cid-dup-001"
#: A third, at support, for the resolve action.
DEAD_SUPPORT = "cid-dl-902"


def _extra(now: datetime) -> list[Event]:
    crm, il, billing = System.CRM, System.INTERLOCK, System.BILLING
    dup = Chain(DUPLICATED, "001E1", "700.00", now - timedelta(minutes=30))
    dup.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    for _ in range(2):  # the CRM delivers the same change twice more: recognised, dropped
        dup.add(1, crm, il, "opportunity.closed_won", "crm.closed_won", status=Status.DUPLICATE)
    down = ErrorInfo(reason=Reason.VALIDATION, message="plan unknown", retriable=False,
                     status_code=400)  # fmt: skip
    bad = Chain(DEAD_BILLING, "001F1", "5000.00", now - timedelta(minutes=10))
    bad.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    bad.add(1, il, billing, "subscription.created", "billing.create_subscription",
            status=Status.DEAD_LETTERED, error=down)  # fmt: skip
    sup = Chain(DEAD_SUPPORT, "001G1", "300.00", now - timedelta(minutes=12))
    sup.add(0, crm, il, "opportunity.closed_won", "crm.closed_won")
    sup.add(1, il, System.SUPPORT, "case.enriched", "support.enrich_case",
            status=Status.DEAD_LETTERED, error=down)  # fmt: skip
    return dup.events + bad.events + sup.events


@pytest.fixture(scope="module")
def stack() -> Iterator[StackApi]:
    api = StackApi(extra_events=_extra(datetime.now(UTC))).start()
    yield api
    api.stop()


@pytest.fixture
def api(stack: StackApi) -> Iterator[httpx.Client]:
    """The control API as an operator (reads carry a token too)."""
    headers = {"Authorization": f"Bearer {TOKENS['operator']}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def open_as(stack: StackApi, monkeypatch: pytest.MonkeyPatch) -> Opener:
    def run(file: str, who: str, **query: str) -> AppTest:
        monkeypatch.setenv("INTERLOCK_API_URL", stack.url)
        monkeypatch.delenv("INTERLOCK_API_TOKEN", raising=False)
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(DASHBOARDS / file), default_timeout=60)
        at.session_state["api_token"] = TOKENS[who]
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()

    return run


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.success]
    parts += [m.value for m in at.info] + [m.value for m in at.warning]
    parts += [m.value for m in at.error] + [m.value for m in at.caption]
    return "\n".join(str(p) for p in parts)


def frame_with(at: AppTest, column: str) -> Any:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- Home ---------------------------------------------------------------------------------


def test_home_counts_the_duplicates_metrics_count(open_as: Opener, api: httpx.Client) -> None:
    stats = api.get("/api/v1/stats").raise_for_status().json()
    duplicates = stats["events_by_status"]["duplicate"]
    assert duplicates == 2  # what interlock_events_total{status="duplicate"} counts
    at = clean(open_as("pages/01_Overview.py", "viewer"))
    caption = next(c.value for c in at.caption if "recorded" in c.value)
    assert f"{duplicates} duplicate deliveries not acted on" in caption
    assert "1 events" not in texts(at)


def test_home_throughput_bars_span_their_bucket_and_the_axis_ends_now(open_as: Opener) -> None:
    at = clean(open_as("pages/01_Overview.py", "viewer"))
    [spec] = [
        s
        for s in (json.loads(el.proto.spec) for el in at.get("vega_lite_chart"))
        if s.get("encoding", {}).get("x", {}).get("field") == "at"
    ]
    encoding = spec["encoding"]
    assert encoding["x2"]["field"] == "until"  # a bar is as wide as its 10-minute bucket
    start, end = encoding["x"]["scale"]["domain"]
    # The axis runs over the 6 hours asked for, up to now (not to the last bucket's start).
    assert datetime.fromisoformat(end) - datetime.fromisoformat(start) == timedelta(hours=6)
    assert datetime.now(UTC).replace(tzinfo=None) - datetime.fromisoformat(end) < timedelta(
        minutes=2
    )
    assert encoding["y"]["axis"]["tickMinStep"] == 1
    assert spec["height"] >= 200


# -- Transactions ---------------------------------------------------------------------------


def test_causation_graph_nodes_break_lines(open_as: Opener) -> None:
    at = clean(open_as("pages/02_Transactions.py", "viewer", cid=COMPLETED[0]))
    [graph] = at.get("graphviz_chart")
    dot = graph.proto.spec
    # DOT's own line break (backslash n), not an escaped backslash shown literally.
    assert "crm\\nopportunity.closed_won\\nok #1" in dot
    assert "\\\\n" not in dot


def test_a_retry_that_later_succeeded_is_no_red_error(open_as: Opener) -> None:
    at = clean(open_as("pages/02_Transactions.py", "viewer", cid=COMPLETED[0]))
    assert not at.error, [e.value for e in at.error]
    # The step picker opens on the first step, and the retried attempt reads as history.
    picker = next(s for s in at.selectbox if s.label == "Step")
    assert picker.value == 0
    picker.set_value(2).run()
    assert not at.error
    assert any("a later attempt of billing.create_subscription succeeded" in i.value
               for i in at.info)  # fmt: skip
    dead = clean(open_as("pages/02_Transactions.py", "viewer", cid=DEAD))
    assert dead.error  # an unrecovered failure is still shown as one


# -- Adapters ----------------------------------------------------------------------------------


def test_adapters_show_no_none_and_a_readable_window(open_as: Opener) -> None:
    at = clean(open_as("pages/03_Adapters.py", "viewer"))
    table = at.dataframe[0].value
    assert "crm" not in list(table["system"])  # no calls out: no row of empty cells
    assert not table[["error rate %", "p50 ms", "p95 ms", "p99 ms"]].isna().any().any()
    assert "crm: no calls out" in texts(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Window"))
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d to \d\d:\d\d:\d\d UTC \(1 h", caption)
    assert "+00:00" not in caption


# -- SLAs ---------------------------------------------------------------------------------------


def test_slas_say_too_little_data_and_budget_over_time_observed(
    open_as: Opener, api: httpx.Client
) -> None:
    rules = api.get("/api/v1/sla").raise_for_status().json()["rules"]
    at = clean(open_as("pages/20_SLAs.py", "viewer"))
    table = at.dataframe[0].value
    # The shipped rules and quote-to-cash's credit-hold rule.
    assert len(table) == len([r for r in rules if r["evaluated_at"]]) == 13
    # Forty minutes of traffic in a 30-day window: judged as too little data, and the
    # budget is the 30-day budget minus what those minutes spent (not -3,000 %).
    erp = table[table["SLA"] == "ERP API error rate"].iloc[0]
    assert erp["Window observed"].endswith("of 30 d: too little data")
    budget = float(erp["Budget left"].removesuffix(" %"))
    assert 90.0 < budget < 100.0
    assert not table["Budget left"].str.startswith("exhausted").any()


def test_sla_table_height_holds_every_row() -> None:
    from dashboards._sla import table_height

    # Streamlit draws 35 px rows under a 35 px header; the default 10-row frame clipped
    # the 11th SLA.
    assert table_height(11) >= 35 * 12 > 35 * 10 + 3


# -- Alerts -------------------------------------------------------------------------------------


def test_alerts_carry_currency_and_duplicates_risk_nothing(
    open_as: Opener, api: httpx.Client
) -> None:
    alerts = api.get("/api/v1/alerts").raise_for_status().json()["alerts"]
    assert alerts
    at = clean(open_as("pages/21_Alerts.py", "viewer"))
    headers = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len(headers) == len(alerts)
    for header in headers:
        assert re.search(r"· (EUR [\d,]+\.\d\d at risk|nothing at risk) ·", header), header
    for alert in alerts:
        if alert["rule_id"] == "duplicate-rate":
            assert alert["value_at_risk"] == 0 and alert["customers_affected"] == 0


# -- Reports ------------------------------------------------------------------------------------


def test_report_says_no_data_and_shows_incidents_readably(open_as: Opener) -> None:
    at = clean(open_as("pages/22_Reports.py", "viewer"))
    rows = frame_with(at, "Previous period")
    assert set(rows["Previous period"]) == {"no data"}  # nothing ran before this week
    assert set(rows["Trend"]) == {"no data"}
    assert rows["Achieved"].str.fullmatch(r"[\d.,]+ %|no data").all()
    incidents = frame_with(at, "Impact score")
    assert list(incidents.columns) == ["SLA", "Severity", "Opened", "Lasted", "Value at risk",
                                       "Customers", "Impact score"]  # fmt: skip
    assert incidents["Opened"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC").all()
    assert incidents["Impact score"].str.fullmatch(r"\d+\.\d").all()


# -- Dead letters and replays -------------------------------------------------------------------


def test_dead_letter_filters_say_any(open_as: Opener) -> None:
    at = clean(open_as("pages/30_Dead_letters.py", "operator"))
    reason = next(s for s in at.selectbox if s.key == "dl_reason")
    target = next(s for s in at.selectbox if s.key == "dl_target")
    assert reason.format_func(reason.value) == "any reason"
    assert target.format_func(target.value) == "any system"
    assert "./Runbooks?name=" in texts(at)  # each group links the runbook for its reason
    target.set_value("billing").run()
    assert [i for i in frame_with(at, "event_id")["correlation_id"]] == [DEAD_BILLING]


def test_replay_dry_run_reads_as_words_and_progress_follows_the_newest(
    open_as: Opener, api: httpx.Client
) -> None:
    body = {"selection": {"correlation_id": DEAD}, "dry_run": False, "reason": "ERP is back"}
    older = api.post("/api/v1/replays", json=body)
    assert older.status_code == 202, older.text
    at = clean(open_as("pages/31_Replay.py", "operator"))
    assert next(s for s in at.selectbox if s.key == "rp_pick").value == older.json()["replay_id"]
    at.radio(key="rp_kind").set_value("correlation_id").run()
    at.text_input(key="rp_value").input(DEAD_BILLING).run()
    at.button(key="rp_dry").click().run()
    clean(at)
    said = texts(at)
    assert "Dry run: 1 to re-deliver (billing 1), 0 skipped;" in said and "{" not in said
    plan = frame_with(at, "why skipped")
    assert list(plan["why skipped"]) == ["—"] and list(plan["amount"]) == ["EUR 5,000.00"]
    at.text_input(key="rp_reason").input("plan fixed in billing").run()
    at.button(key="rp_request").click().run()
    clean(at)
    newest = api.get("/api/v1/replays").raise_for_status().json()["items"][0]
    assert newest["replay_id"] != older.json()["replay_id"]
    assert next(s for s in at.selectbox if s.key == "rp_pick").value == newest["replay_id"]
    table = frame_with(at, "decided_by")
    assert not table["decided_by"].isna().any()
    assert "awaiting approval" in set(table["decided_by"])


def test_dead_letters_page_dry_runs_and_resolves(open_as: Opener, api: httpx.Client) -> None:
    at = clean(open_as("pages/30_Dead_letters.py", "operator"))
    next(s for s in at.selectbox if s.key == "dl_target").set_value("support").run()
    assert {t.label for t in at.tabs} >= {"Replay this one", "Resolve or ignore"}
    picked = next(s for s in at.selectbox if s.key == "dl_pick").value
    assert picked.startswith(DEAD_SUPPORT)
    next(b for b in at.button if b.label == "Dry run").click().run()
    clean(at)
    said = [s.value for s in at.success] + [e.value for e in at.error]
    assert any(s.startswith("Dry run: 1 to re-deliver (support 1)") for s in said), said
    # A form: the reason and the submit go together.
    at.text_input(key="dl_close_reason").input("fixed by hand in the support desk")
    next(b for b in at.button if b.label.startswith("Resolve")).click().run()
    clean(at)
    said = [s.value for s in at.success] + [e.value for e in at.error]
    assert any(s.startswith("Resolved") for s in said), said
    letter = api.get(f"/api/v1/dead-letters/{picked}").raise_for_status().json()
    assert letter["state"] == "resolved"
    trail = api.get("/api/v1/audit").raise_for_status().json()["items"]
    assert any(e.get("action") == "dead_letter.resolve" for e in trail), trail[:3]


# -- Runbooks -------------------------------------------------------------------------------


def test_every_shipped_rule_has_a_runbook_the_app_serves() -> None:
    from adapters.flows import SPEC
    from dashboards._runbooks import runbook_name
    from sla_rules import load_rules
    from sla_rules._model import SHIPPED_RULES_DIR

    # The shipped rule files and the ones quote-to-cash ships beside its flow.
    rules = load_rules([SHIPPED_RULES_DIR, *SPEC.rule_files])
    assert len(rules) == 13
    missing = [r.id for r in rules if runbook_name(r.runbook) is None]
    assert missing == []


def test_alerts_slas_and_dead_letters_link_to_runbooks_in_the_app(open_as: Opener) -> None:
    alerts = clean(open_as("pages/21_Alerts.py", "viewer"))
    headers = [m.value for m in alerts.markdown if m.value.startswith("**")]
    links = [m.value for m in alerts.markdown if "./Runbooks?name=" in m.value]
    assert headers and len(links) == len(headers)
    slas = clean(open_as("pages/20_SLAs.py", "viewer"))
    table = slas.dataframe[0].value
    assert table["Runbook"].str.startswith("./Runbooks?name=").all()
    stalled = clean(open_as("pages/02_Transactions.py", "viewer", cid=DEAD))
    assert "./Runbooks?name=retry-and-replay" in texts(stalled)


def test_a_stalled_transaction_links_the_stalled_runbook(sample_api, use_api, run_page) -> None:
    use_api(sample_api)
    at = run_page("pages/02_Transactions.py", cid=OPEN)
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert "(./Runbooks?name=stalled)" in shown
    listed = run_page("pages/02_Transactions.py")  # the list holds the stalled one too
    assert "(./Runbooks?name=stalled)" in "\n".join(m.value for m in listed.markdown)


def test_every_dead_letter_reason_has_a_runbook_the_app_serves() -> None:
    from dashboards._runbooks import REASON_RUNBOOKS, runbook_name

    assert {r.value for r in Reason} <= set(REASON_RUNBOOKS)
    assert all(runbook_name(name) for name in REASON_RUNBOOKS.values())
    # Bad credentials are not fixed by retrying: their own runbook says what is.
    assert REASON_RUNBOOKS["auth"] == "credentials"


def test_runbooks_page_serves_one_by_name(open_as: Opener) -> None:
    at = clean(open_as("pages/40_Runbooks.py", "viewer", name="webhook-rejections"))
    page = texts(at)
    assert "# Billing webhooks rejected" in page
    assert "](./Runbooks?name=retry-and-replay)" in page  # links stay in the app
    bad = clean(open_as("pages/40_Runbooks.py", "viewer", name="../../pyproject"))
    assert "# Runbooks" in texts(bad)  # the index, never a file outside the folder
