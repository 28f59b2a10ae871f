"""Helpers for tests that run collectors as separate processes and kill them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]


def start_collector(
    bootstrap: str, db: Path, *, session_ms: int = 2000, log: Path
) -> subprocess.Popen[bytes]:
    """A collector process (``python -m collector._kafka_ingest``) on ``db``."""
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector._kafka_ingest",
            "--bootstrap",
            bootstrap,
            "--db",
            str(db),
            "--events-topic",
            "t.events",
            "--dead-letter-topic",
            "t.dead",
            "--partitions",
            "4",
            "--session-timeout-ms",
            str(session_ms),
            "--max-batch",
            "2000",
        ],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return proc


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    proc.wait(15)


def stored_ids(db: Path) -> list[str]:
    """Every event ID in a lineage file (opened read-only, after the writer exited).

    A collector killed while it was still starting (a loaded machine: the other one
    took every partition first) leaves a file without a schema: it holds no events.
    """
    if not db.exists():
        return []
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "events" not in tables:
            return []
        return [r[0] for r in con.execute("SELECT event_id FROM events").fetchall()]
    finally:
        con.close()


def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
