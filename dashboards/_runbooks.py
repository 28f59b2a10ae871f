"""Runbooks served by the dashboard: ``docs/runbooks/<name>.md`` shown on the Runbooks
page, linked from every alert, SLA, dead-letter group and stalled transaction.

A rule names its runbook as a repository path (``docs/runbooks/order-latency.md``); pages
link to ``./Runbooks?name=order-latency`` instead, so an operator reads it in the app.
Dead letters link by their reason.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "REASON_RUNBOOKS",
    "RUNBOOK_DIR",
    "runbook_link",
    "runbook_name",
    "runbook_names",
    "runbook_text",
    "runbook_title",
]

RUNBOOK_DIR = Path(__file__).resolve().parents[1] / "docs" / "runbooks"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")

#: A dead letter's reason -> the runbook for it.
REASON_RUNBOOKS = {
    "downstream_unavailable": "retry-and-replay",
    "rate_limit": "retry-and-replay",
    "unknown": "retry-and-replay",
    "auth": "credentials",
    "conflict": "manual-intervention",
    "validation": "manual-intervention",
    "mapping": "manual-intervention",
}


def runbook_name(reference: str | None) -> str | None:
    """``"docs/runbooks/order-latency.md"`` or ``"order-latency"`` -> ``"order-latency"``;
    ``None`` when there is no such runbook (never a path outside the folder)."""
    if not reference:
        return None
    name = Path(str(reference)).name.removesuffix(".md")
    if name != "README" and not _NAME.fullmatch(name):
        return None
    if not (RUNBOOK_DIR / f"{name}.md").is_file():
        return None
    return name


def runbook_names() -> list[str]:
    """Every runbook, the index (README) first."""
    names = sorted(p.stem for p in RUNBOOK_DIR.glob("*.md") if p.stem != "README")
    return ["README", *names] if (RUNBOOK_DIR / "README.md").is_file() else names


def runbook_text(name: str) -> str:
    """The runbook's Markdown, its links to other runbooks pointing into the app."""
    text = (RUNBOOK_DIR / f"{name}.md").read_text(encoding="utf-8")
    return re.sub(r"\]\(([a-z0-9-]+)\.md\)", r"](./Runbooks?name=\1)", text)


def runbook_title(name: str) -> str:
    """The runbook's first heading."""
    for line in runbook_text(name).splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return name


def runbook_link(reference: str | None) -> str | None:
    """A Markdown link to the runbook in the app, or ``None`` if there is none."""
    name = runbook_name(reference)
    if name is None:
        return None
    return f"[Runbook: {runbook_title(name)} →](./Runbooks?name={name})"
