"""``interlock rules export-prometheus`` and ``interlock report``.

Each subcommand sets ``func`` (``args -> exit code``) on its parser. ``report`` fetches
the report from the control API over HTTP: the CLI never opens the lineage file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from ._model import SHIPPED_RULES_DIR, RuleFileError, load_rules
from ._prometheus import DEFAULT_DASHBOARD_URL, export_prometheus_rules
from ._report import PERIODS

__all__ = ["plugin_rule_files", "register_cli"]

DEFAULT_API_URL = "http://127.0.0.1:7400"


def plugin_rule_files(plugins: Iterable[object] | None = None) -> tuple[Path, ...]:
    """The SLA rule files the installed plug-ins ship (each one's ``rule_files``: the
    reconcile room's drift rule, a flow's own rules), in install order, each once.

    Read from the plug-ins' declarations, without installing them: exporting rules
    needs no ERP or billing settings."""
    if plugins is None:
        from collector import discover

        plugins = discover()
    out: list[Path] = []
    for plugin in plugins:
        for path in getattr(plugin, "rule_files", ()):
            if Path(path) not in out:
                out.append(Path(path))
    return tuple(out)


def _export(args: argparse.Namespace) -> int:
    try:
        files = args.rules or [SHIPPED_RULES_DIR, *plugin_rule_files()]
        rules = load_rules(files)
    except RuleFileError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    dashboard = args.dashboard_url or os.environ.get("INTERLOCK_DASHBOARD_URL")
    out = export_prometheus_rules(
        rules, args.outfile, dashboard_url=dashboard or DEFAULT_DASHBOARD_URL
    )
    print(f"wrote {len(rules)} SLOs as Prometheus rules to {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    base = (args.api or os.environ.get("INTERLOCK_API_URL") or DEFAULT_API_URL).rstrip("/")
    token = args.token or os.environ.get("INTERLOCK_API_TOKEN")
    params: dict[str, Any] = {"period": args.period, "format": args.format}
    if args.start:
        params["start"] = args.start
    if args.end:
        params["end"] = args.end
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(
            f"{base}/api/v1/reports/sla", params=params, headers=headers, timeout=60.0
        )
    except httpx.TransportError as exc:
        print(f"error: control API at {base} unreachable: {type(exc).__name__}", file=sys.stderr)
        return 3
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        print(f"error: control API answered {response.status_code}: {detail}", file=sys.stderr)
        return 1
    args.out.write_bytes(response.content)
    print(f"wrote {args.format} report ({len(response.content):,} bytes) to {args.out}")
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``rules export-prometheus`` and ``report`` to an argparse subparsers object."""
    rules = subparsers.add_parser("rules", help="SLA rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    export = rules_sub.add_parser(
        "export-prometheus", help="write Prometheus recording and alerting rules for the SLOs"
    )
    export.add_argument("outfile", type=Path, help="the rule file to write")
    export.add_argument(
        "--dashboard-url",
        default=None,
        help="base URL of the dashboard the alerts' runbook_url points into "
        f"(default: $INTERLOCK_DASHBOARD_URL, else {DEFAULT_DASHBOARD_URL})",
    )
    export.add_argument(
        "--rules", nargs="+", type=Path, default=None,
        help="rule files or folders (default: the shipped SLA rules and those the "
        "installed plug-ins ship, e.g. reconciliation drift and credit holds)",
    )  # fmt: skip
    export.set_defaults(func=_export)

    # Each help names its default: the environment-or-builtin ones are not argparse
    # defaults, so ArgumentDefaultsHelpFormatter would print "(default: None)" for them.
    report = subparsers.add_parser("report", help="the executive SLA report, from the control API")
    report.add_argument(
        "--period", choices=PERIODS, default="last-7d", help="report period (default: last-7d)"
    )
    report.add_argument("--start", help="ISO 8601 start; custom period only (no default)")
    report.add_argument("--end", help="ISO 8601 end, exclusive; custom period only (no default)")
    report.add_argument(
        "--format", choices=("pdf", "csv", "json"), default="pdf",
        help="what to write (default: pdf)",
    )  # fmt: skip
    report.add_argument("--out", type=Path, required=True, help="file to write (required)")
    report.add_argument(
        "--api",
        help=f"control API URL (default: $INTERLOCK_API_URL, else {DEFAULT_API_URL})",
    )
    report.add_argument(
        "--token", help="API token, viewer or above (default: $INTERLOCK_API_TOKEN, else none)"
    )
    report.set_defaults(func=_report)
