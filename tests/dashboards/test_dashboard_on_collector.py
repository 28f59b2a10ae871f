"""The pages against the real collector app (in-memory lineage), seeded with the same
envelopes as the fake: the fake and the collector must agree on the contract."""

from __future__ import annotations

import json

import httpx

from dashboards import ControlClient


def test_collector_answers_what_the_fake_answers(collector_api, collector_token, sample_api):
    with ControlClient(collector_api, collector_token) as real, ControlClient(sample_api) as fake:
        real_stats, fake_stats = real.stats(), fake.stats()
        for key in ("events_total", "transactions_total"):
            assert real_stats[key] == fake_stats[key], key
        # The real host knows quote-to-cash's step table, so an old unfinished sample
        # transaction reads stalled there; the fake has no step tables.
        real_states, fake_states = (
            dict(x["transactions_by_state"]) for x in (real_stats, fake_stats)
        )
        for states in (real_states, fake_states):
            states["in_progress"] += states.pop("stalled", 0)
        assert real_states == fake_states
        assert real_stats["dead_letters_open"] == fake_stats["dead_letters_open"]
        real_page, fake_page = real.transactions(), fake.transactions()
        assert [t["correlation_id"] for t in real_page["items"]] == [
            t["correlation_id"] for t in fake_page["items"]
        ]
        assert set(fake_page["items"][0]) <= set(real_page["items"][0])
        real_events = real.transaction("cid-dead-002")["events"]
        fake_events = fake.transaction("cid-dead-002")["events"]
        assert set(fake_events[0]) <= set(real_events[0])
        assert [e["since_cause_ms"] for e in real_events] == [
            e["since_cause_ms"] for e in fake_events
        ]
        assert real.dead_letters()["items"][0]["reason"] == "conflict"
        missing = httpx.get(
            f"{collector_api}/api/v1/transactions/nope",
            headers={"Authorization": f"Bearer {collector_token}"},
        )
        assert missing.json()["detail"] == "no transaction nope"


def test_pages_render_on_the_collector(collector_api, collector_token, use_api, run_page,
                                       monkeypatch):  # fmt: skip
    use_api(collector_api)
    monkeypatch.setenv("INTERLOCK_API_TOKEN", collector_token)
    overview = run_page("pages/01_Overview.py")
    assert not overview.exception and not overview.error
    assert {m.label: m.value for m in overview.metric}["Value in flight"] == "EUR 430.50"

    detail = run_page("pages/02_Transactions.py", cid="cid-dead-002")
    assert not detail.exception
    (spec,) = [json.loads(e.proto.spec) for e in detail.get("vega_lite_chart")]
    assert spec["layer"][1]["encoding"]["y"]["scale"]["domain"] == ["crm", "interlock", "erp"]
