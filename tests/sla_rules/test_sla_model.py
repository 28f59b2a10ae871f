"""The rule format: shipped rules load; a bad file names the file, the rule and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

import sla_rules
from sla_rules import ImpactTier, RuleFileError, load_rules
from sla_rules._model import parse_duration, parse_ratio


def test_exported_members_exist():
    for name in sla_rules.__all__:
        assert hasattr(sla_rules, name), name


def test_shipped_rules_cover_the_business_slas():
    rules = {rule.id: rule for rule in load_rules()}
    kinds = {rule.indicator.kind for rule in rules.values()}
    assert kinds == {
        "latency", "success_ratio", "completeness", "backlog", "duplicate_rate",
        "resolution_time", "api_error_rate", "stalled",
    }  # fmt: skip
    latency = rules["closed-won-to-erp-order"]
    assert latency.objective == 0.99
    assert latency.indicator.threshold == timedelta(minutes=5)  # type: ignore[union-attr]
    assert latency.impact_tier is ImpactTier.REVENUE
    assert latency.alerting.page_fast.burn_rate == 14.4
    assert rules["webhook-rejections-billing"].objective == 0.999
    assert {r.scope for r in rules.values() if r.indicator.kind == "api_error_rate"} == {
        "erp", "billing", "support",
    }  # fmt: skip
    assert all(r.source.endswith(".yaml") and r.service for r in rules.values())


@pytest.mark.parametrize(
    ("text", "expected"), [("90s", 90), ("5m", 300), ("1.5h", 5400), ("3d", 259200), (30, 30)]
)
def test_durations(text, expected):
    assert parse_duration(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("bad", ["5 minutes", "-5m", "0s", "", None, True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(("text", "expected"), [("99.5%", 0.995), (0.9, 0.9), ("99.9%", 0.999)])
def test_ratios(text, expected):
    assert parse_ratio(text) == expected


@pytest.mark.parametrize("bad", ["100%", "0%", 1.0, "ninety", "150%"])
def test_bad_ratios(bad):
    with pytest.raises(ValueError):
        parse_ratio(bad)


GOOD = {
    "id": "r1",
    "name": "Rule",
    "objective": "99%",
    "impact_tier": "revenue",
    "indicator": {"kind": "latency", "start": {"kind": "a.b"}, "end": {"kind": "c.d"},
                  "threshold": "5m"},
}  # fmt: skip


def _write(tmp_path: Path, slo: dict, **top) -> Path:
    doc = {"version": 1, "service": "svc", "slos": [slo], **top}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"objective": "101%"}, "objective", "between"),
        ({"impact_tier": "vanity"}, "impact_tier", "revenue"),
        ({"indicator": {**GOOD["indicator"], "threshold": "soon"}}, "indicator.threshold",
         "duration"),
        ({"indicator": {"kind": "nonsense"}}, "indicator", "kind"),
        ({"indicator": {**GOOD["indicator"], "extra": 1}}, "indicator.extra", "not permitted"),
        ({"alerting": {"page_fast": {"long": "5m", "short": "1h", "burn_rate": 14.4}}},
         "alerting.page_fast", "shorter"),
        ({"id": "Bad ID"}, "id", "a-z"),
    ],
)  # fmt: skip
def test_bad_rule_names_file_rule_and_field(tmp_path, change, field, words):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(RuleFileError) as caught:
        load_rules([path])
    err = caught.value
    assert err.path == str(path)
    assert err.field == field
    assert words in err.message
    assert str(path) in err.message and f"rule {err.rule}" in err.message


def test_bad_documents(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("version: 2\nservice: s\nslos: []\n")
    with pytest.raises(RuleFileError, match="unsupported version"):
        load_rules([path])
    path.write_text("slos: [unclosed")
    with pytest.raises(RuleFileError, match="not valid YAML"):
        load_rules([path])
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules([tmp_path / "missing.yaml"])


def test_duplicate_ids_across_files(tmp_path):
    first = _write(tmp_path, GOOD)
    second = tmp_path / "b.yaml"
    second.write_text(first.read_text())
    with pytest.raises(RuleFileError, match="duplicate") as caught:
        load_rules([tmp_path])
    assert caught.value.rule == "r1"
