"""The ``interlock`` command.

interlock up [--config FILE] [--no-demo] [--no-dashboard]
interlock rules export-prometheus OUTFILE          (from sla_rules)
interlock report --period last-7d --format pdf --out FILE   (from sla_rules)
interlock audit verify                             (from replay)
interlock tokens hash|create|list|revoke             (from replay)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from tracing import InterlockError

from ._config import load_settings
from ._plugins import discover

__all__ = ["main"]

log = logging.getLogger("interlock")


def _register_plugins(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands contributed by the installed plug-ins (a ``register_cli(sub)`` method)."""
    for plugin in discover():
        register = getattr(plugin, "register_cli", None)
        if register is not None:
            register(sub)


async def _up(args: argparse.Namespace) -> int:
    from .host import Interlock

    settings = load_settings(args.config)
    runtime = Interlock(settings, demo=False if args.no_demo else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("Interlock is starting" + (" with the demo landscape…" if runtime.demo else "…"))
    try:
        info = await runtime.start()
        if settings.dashboard.enabled and not args.no_dashboard:
            await asyncio.to_thread(runtime.start_dashboard)
        print()
        print(f"  Dashboard    {info.dashboard_url or '(not started)'}")
        print(f"  Control API  {info.api_url}   (OpenAPI: {info.api_url}/docs)")
        print(f"  Metrics      {info.api_url}/metrics")
        if info.tokens_file:
            print(f"  Role tokens  {info.tokens_file}  (sign in to the dashboard with one)")
        print("\nPress Ctrl-C to stop everything.", flush=True)
        await stop.wait()
        print("\nStopping…", flush=True)
    finally:
        await runtime.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlock", description="Integration layer and control plane for ERP-centred SaaS."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Interlock (with the demo landscape by default)")
    up.add_argument("--config", help="TOML settings file (default: $INTERLOCK_CONFIG)")
    up.add_argument("--no-demo", action="store_true", help="connect to configured systems only")
    up.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    up.set_defaults(func=lambda a: asyncio.run(_up(a)))
    _register_plugins(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Per-call adapter logs are for debugging; the console shows the landscape and faults.
        for noisy in ("httpx", "uvicorn", "aiokafka", "interlock.adapters", "streamlit"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = args.func(args)
    except InterlockError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    with contextlib.suppress(TypeError, ValueError):
        return int(result or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
