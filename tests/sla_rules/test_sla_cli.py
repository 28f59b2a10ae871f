"""``interlock report --help`` and ``rules export-prometheus --help`` name every default."""

from __future__ import annotations

import pytest

from collector._cli import build_parser


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_report_help_shows_every_default_and_never_none(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "report")
    assert "report period (default: last-7d)" in text
    assert "what to write (default: pdf)" in text
    assert "file to write (required)" in text
    assert "(default: $INTERLOCK_API_URL, else http://127.0.0.1:7400)" in text
    assert "(default: $INTERLOCK_API_TOKEN, else none)" in text
    assert text.count("custom period only (no default)") == 2
    assert "default: None" not in text


def test_export_help_shows_the_dashboard_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "rules", "export-prometheus")
    assert "(default: $INTERLOCK_DASHBOARD_URL, else" in text
    assert "default: None" not in text
