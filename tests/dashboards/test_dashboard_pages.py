"""Every page, run with AppTest against real hosts on loopback (``conftest.py``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboards._nav import discover_pages

OVERVIEW = "pages/01_Overview.py"
TRANSACTIONS = "pages/02_Transactions.py"


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def summary(at: AppTest) -> list[str]:
    """The transaction summary row's values, as the page shows them (bold, never cut off)."""
    return [m.value for m in at.markdown if m.value.startswith("**")]


def chart_specs(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def timeline_lanes(at: AppTest) -> list[str]:
    (spec,) = [s for s in chart_specs(at) if "layer" in s]
    return list(spec["layer"][1]["encoding"]["y"]["scale"]["domain"])


def query_param(at: AppTest, key: str) -> str | None:
    value = at.query_params.get(key)
    return value[0] if isinstance(value, list) else value


def events_frame(at: AppTest) -> Any:
    """The transaction's event table (the one with a "since cause" column)."""
    return next(d.value for d in at.dataframe if "since cause" in d.value.columns)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# -- Overview -----------------------------------------------------------------------------


def test_overview_shows_kpis_with_units_and_currency(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(OVERVIEW)
    assert_clean(at)
    shown = metrics(at)
    assert shown["Transactions"] == "3"
    # The waiting order is a week past its ERP step's deadline: stalled, not in flight.
    assert shown["In flight"] == "0"
    assert shown["Stalled"] == "1"
    assert shown["Completed"] == "1"
    assert shown["Dead-lettered"] == "1"
    # Value in flight counts the stalled one too.
    assert shown["Value in flight"] == "EUR 430.50"
    assert shown["Value completed"] == "EUR 1,250.00"
    assert shown["Dead letters open"] == "1"
    assert shown["Bus backlog"] == "0 events"
    assert any("12 events recorded" in c.value for c in at.caption)


def test_overview_lists_recent_transactions_newest_first_with_links(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(OVERVIEW)
    recent = at.dataframe[-1].value
    assert list(recent["transaction"]) == [
        "./Transactions?cid=cid-done-001",
        "./Transactions?cid=cid-open-003",
        "./Transactions?cid=cid-dead-002",
    ]
    assert list(recent["customer"]) == ["Acme GmbH", "Initech SA", "Globex Ltd"]


def test_overview_shows_the_sections_the_collector_serves(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(OVERVIEW)
    assert_clean(at)
    captions = "\n".join(c.value for c in at.caption)
    assert "serves no" not in captions
    assert "1 open dead letters in 1 groups." in captions
    subheaders = [s.value for s in at.subheader]
    assert "Business SLAs" in subheaders and "Firing alerts by impact" in subheaders


def test_overview_says_which_sections_this_collector_does_not_serve(bare_api, use_api, run_page):
    """Without the SLA and replay plug-ins there is no SLA, alerts or grouping API: those
    sections say so, and the rest of the page still renders."""
    use_api(bare_api)
    at = run_page(OVERVIEW)
    assert_clean(at)
    assert metrics(at)["Transactions"] == "3"
    captions = "\n".join(c.value for c in at.caption)
    assert "serves no SLA API" in captions
    assert "serves no alerts API" in captions
    assert "1 open; this collector serves no grouping" in captions
    assert [c.value for c in at.selectbox] == ["15 s"]


def test_overview_empty_state_says_what_to_do(empty_api, use_api, run_page):
    use_api(empty_api)
    at = run_page(OVERVIEW)
    assert_clean(at)
    assert "No transactions yet — is the traffic generator running?" in at.info[0].value
    assert not at.metric


def test_overview_unreachable_api_names_url_and_make_run(down_api, use_api, run_page):
    use_api(down_api)
    at = run_page(OVERVIEW)
    assert_clean(at)
    (error,) = at.error
    assert f"unreachable at {down_api}" in error.value
    assert "make run" in error.value


def test_overview_asks_for_a_token_when_reads_need_one(locked_api, use_api, run_page):
    use_api(locked_api)
    at = run_page(OVERVIEW)
    assert_clean(at)
    assert "401" in at.error[0].value
    assert "API token" in at.error[0].value


def test_overview_reads_with_the_token_from_the_environment(
    locked_api, use_api, run_page, monkeypatch
):
    use_api(locked_api)
    monkeypatch.setenv("INTERLOCK_API_TOKEN", "reader-token")
    at = run_page(OVERVIEW)
    assert not at.error
    assert metrics(at)["Transactions"] == "3"


# -- Transactions -------------------------------------------------------------------------


def test_transactions_lists_all_and_opens_the_newest(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(TRANSACTIONS)
    assert_clean(at)
    table = at.dataframe[0].value
    assert len(table) == 3
    picker = next(s for s in at.selectbox if s.label == "Transaction")
    assert picker.value == "cid-done-001"
    assert timeline_lanes(at) == ["crm", "erp", "billing", "support"]


def test_transactions_link_by_cid_draws_the_swimlanes(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(TRANSACTIONS, cid="cid-done-001")
    assert_clean(at)
    assert "**Acme GmbH**" in summary(at)
    assert "**EUR 1,250.00**" in summary(at)
    assert any("badge[completed]" in m.value for m in at.markdown)
    # crm -> erp -> billing -> support, plus Interlock's own lane? none here: every step
    # of the completed order acted on an external system.
    assert timeline_lanes(at) == ["crm", "erp", "billing", "support"]
    events = events_frame(at)
    assert list(events["system"]) == ["crm", "erp", "erp", "billing", "billing", "support"]
    assert list(events["since cause"])[1] == "800 ms"


def test_transactions_marks_problem_steps_and_shows_their_payload(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(TRANSACTIONS, cid="cid-dead-002")
    assert_clean(at)
    assert timeline_lanes(at) == ["crm", "interlock", "erp"]
    events = events_frame(at)
    assert list(events["status"]) == ["ok", "retrying", "failed", "dead_lettered"]
    # The payload picker opens on the first step that went wrong.
    step = next(s for s in at.selectbox if s.label == "Step")
    assert step.value == 1
    assert "ERP answered 503" in at.error[0].value
    assert json.loads(at.json[0].value) == {"email": "j***@example.com", "amount": "98000.00"}

    step.set_value(3).run()
    assert "credit limit exceeded" in at.error[0].value


def test_transactions_filters_by_state_and_search(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(TRANSACTIONS)
    at.selectbox(key="tx_state").set_value("completed").run()
    assert list(at.dataframe[0].value["customer"]) == ["Acme GmbH"]

    at.selectbox(key="tx_state").set_value("all")
    at.text_input(key="tx_q").input("GLOBEX").run()
    assert list(at.dataframe[0].value["customer"]) == ["Globex Ltd"]

    at.text_input(key="tx_q").input("no-such-thing").run()
    assert_clean(at)
    assert "No transaction matches these filters" in at.info[0].value


def test_transactions_picking_one_puts_it_in_the_url(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(TRANSACTIONS)
    next(s for s in at.selectbox if s.label == "Transaction").set_value("cid-open-003").run()
    assert_clean(at)
    assert query_param(at, "cid") == "cid-open-003"
    assert timeline_lanes(at) == ["crm", "erp"]

    # New filters forget the pick and open the newest match.
    at.selectbox(key="tx_state").set_value("dead_lettered").run()
    assert "cid" not in at.query_params
    assert next(s for s in at.selectbox if s.label == "Transaction").value == "cid-dead-002"


def test_transactions_unknown_cid_says_so(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page(TRANSACTIONS, cid="cid-missing")
    assert_clean(at)
    assert "No transaction `cid-missing`" in at.warning[0].value


def test_transactions_empty_state_says_what_to_do(empty_api, use_api, run_page):
    use_api(empty_api)
    at = run_page(TRANSACTIONS)
    assert_clean(at)
    assert "No transactions yet — is the traffic generator running?" in at.info[0].value


def test_transactions_unreachable_api_names_url_and_make_run(down_api, use_api, run_page):
    use_api(down_api)
    at = run_page(TRANSACTIONS, cid="cid-done-001")
    assert_clean(at)
    assert down_api in at.error[0].value
    assert "make run" in at.error[0].value


# -- the app shell ------------------------------------------------------------------------


def test_app_opens_on_the_overview_and_reaches_every_page(sample_api, use_api, run_page):
    use_api(sample_api)
    at = run_page("app.py")
    assert_clean(at)
    assert metrics(at)["Transactions"] == "3"
    assert any(sample_api in c.value for c in at.sidebar.caption)
    assert any("Collector: ok" in c.value for c in at.sidebar.caption)
    for spec in discover_pages():
        if spec.path.name in {"01_Overview.py", "02_Transactions.py"}:
            at.switch_page(f"pages/{spec.path.name}").run()
            assert_clean(at)


def test_app_sidebar_says_when_the_collector_is_down(down_api, use_api, run_page):
    use_api(down_api)
    at = run_page("app.py")
    assert_clean(at)
    assert any("Collector: unreachable" in c.value for c in at.sidebar.caption)
    assert "make run" in at.error[0].value


@pytest.mark.parametrize("spec", discover_pages(), ids=lambda s: s.path.name)
def test_every_page_renders_against_the_sample_host(spec, sample_api, use_api, run_page):
    """Pages added by dropping a file in (20-39 included) must at least render."""
    use_api(sample_api)
    at = run_page(f"pages/{spec.path.name}")
    assert_clean(at)
