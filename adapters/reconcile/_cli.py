"""``interlock reconcile``: start a run through the control API and print what it found.

The CLI never opens the lineage (the collector is its one writer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx

__all__ = ["register_cli"]

DEFAULT_API_URL = "http://127.0.0.1:7400"


def _reconcile(args: argparse.Namespace) -> int:
    url = (args.api or os.environ.get("INTERLOCK_API_URL") or DEFAULT_API_URL).rstrip("/")
    token = args.token or os.environ.get("INTERLOCK_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"period": args.period, "trigger": "cli"}
    if args.period == "custom":
        body |= {"from": args.start, "to": args.end}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            started = client.post("/api/v1/reconciliations", json=body)
            if started.status_code != 202:
                return _refused(started)
            run_id = started.json()["run_id"]
            deadline = time.monotonic() + args.wait
            while True:
                run = client.get(f"/api/v1/reconciliations/{run_id}")
                if run.status_code != 200:
                    return _refused(run)
                found = run.json()
                if found["status"] != "running" or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
    except httpx.HTTPError as exc:
        print(f"cannot reach the control API at {url}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        _print(found)
    if found["status"] == "running":
        print(f"still running after {args.wait:g} s; follow /api/v1/reconciliations/{run_id}")
        return 3
    if found["status"] == "failed":
        return 2
    return 1 if found["discrepancies"] else 0


def _refused(response: httpx.Response) -> int:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    print(f"the control API answered {response.status_code}: {detail}", file=sys.stderr)
    return 2


def _print(run: dict[str, Any]) -> None:
    print(
        f"reconciliation {run['run_id']}: {run['period']} {run['period_start']} – "
        f"{run['period_end']}, {run['status']}"
    )
    if run.get("error"):
        print(f"  error: {run['error']}")
    counts = ", ".join(f"{k} {v}" for k, v in (run.get("counts") or {}).items())
    if counts:
        print(f"  compared: {counts}; in flight: {run.get('in_flight', 0)}")
    risk = ", ".join(f"{c} {v}" for c, v in (run.get("value_at_risk") or {}).items()) or "none"
    print(f"  discrepancies: {run['discrepancies']}; value at risk: {risk}")
    for item in run.get("items", [])[:50]:
        seen = "seen" if item["seen_by_interlock"] else "never seen by Interlock"
        print(
            f"  - {item['kind']:<17} {item['system']:<8} {item['key']:<24} "
            f"{item['currency'] or ''} {item['value_at_risk']:>12}  {item['detail']} "
            f"[{seen}; repair: {item['repair']}]"
        )


def register_cli(sub: Any) -> None:
    p = sub.add_parser(
        "reconcile",
        help="compare what the systems hold for a period (exit 1 when they disagree)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--period", choices=("day", "week", "month", "custom"), default="day")
    p.add_argument("--from", dest="start", help="custom period start (ISO 8601 with zone)")
    p.add_argument("--to", dest="end", help="custom period end (ISO 8601 with zone)")
    p.add_argument("--api", help=f"control API URL (INTERLOCK_API_URL, else {DEFAULT_API_URL})")
    p.add_argument("--token", help="operator token (INTERLOCK_API_TOKEN)")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the run")
    p.add_argument("--json", action="store_true", help="print the run as JSON")
    p.set_defaults(func=_reconcile)
