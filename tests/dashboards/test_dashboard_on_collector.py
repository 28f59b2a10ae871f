"""The control API's contract as the dashboard reads it, on the real host with reads
locked (``collector_api``, the same host as ``locked_api``), and its pages with a token."""

from __future__ import annotations

import json

import httpx
import pytest
from _sample import DEAD, DONE, OPEN

from dashboards import ControlClient
from tracing import Event

#: What a transaction summary carries (``transaction_table``, ``describe_transaction``).
SUMMARY_FIELDS = {
    "correlation_id", "order_ref", "customer_id", "customer_name", "amount", "currency",
    "state", "started_at", "updated_at", "last_kind", "last_system", "last_status",
    "event_count", "failed_count", "dead_letter_count", "waiting_step", "waiting_since",
    "due_at",
}  # fmt: skip
#: What each event of a transaction carries: the envelope, plus the time since its cause.
EVENT_FIELDS = (set(Event.model_fields) - {"correlation_id", "schema_version"}) | {"since_cause_ms"}


def test_collector_answers_the_contract_the_pages_read(collector_api, collector_token):
    with ControlClient(collector_api, collector_token) as client:
        stats = client.stats()
        assert (stats["events_total"], stats["transactions_total"]) == (12, 3)
        # Quote-to-cash's step table makes the week-old unfinished order stalled.
        assert stats["transactions_by_state"] == {
            "in_progress": 0, "completed": 1, "on_hold": 0, "failed": 0, "dead_lettered": 1,
            "stalled": 1,
        }  # fmt: skip
        assert stats["dead_letters_open"] == 1
        page = client.transactions()
        assert [t["correlation_id"] for t in page["items"]] == [DONE, OPEN, DEAD]
        assert set(page["items"][0]) >= SUMMARY_FIELDS
        assert page["items"][0]["customer_name"] == "Acme GmbH"
        events = client.transaction(DEAD)["events"]
        assert set(events[0]) >= EVENT_FIELDS
        assert [e["since_cause_ms"] for e in events] == [
            None,
            pytest.approx(1000),
            pytest.approx(4000),
            pytest.approx(100),
        ]
        assert client.dead_letters()["items"][0]["reason"] == "conflict"
        missing = httpx.get(
            f"{collector_api}/api/v1/transactions/nope",
            headers={"Authorization": f"Bearer {collector_token}"},
        )
        assert missing.json()["detail"] == "no transaction nope"
    with ControlClient(collector_api) as anonymous:
        assert httpx.get(f"{collector_api}/api/v1/stats").status_code == 401
        assert anonymous.health()["status"] == "ok"  # health needs no token


def test_pages_render_on_the_collector(collector_api, collector_token, use_api, run_page,
                                       monkeypatch):  # fmt: skip
    use_api(collector_api)
    monkeypatch.setenv("INTERLOCK_API_TOKEN", collector_token)
    overview = run_page("pages/01_Overview.py")
    assert not overview.exception and not overview.error
    assert {m.label: m.value for m in overview.metric}["Value in flight"] == "EUR 430.50"

    detail = run_page("pages/02_Transactions.py", cid=DEAD)
    assert not detail.exception
    (spec,) = [json.loads(e.proto.spec) for e in detail.get("vega_lite_chart")]
    assert spec["layer"][1]["encoding"]["y"]["scale"]["domain"] == ["crm", "interlock", "erp"]
