"""The audit trail: append-only and hash-chained.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's
own canonical fields, so altering or removing any entry breaks every hash after
it. Removing the *newest* entries leaves a shorter chain that still verifies on
its own, so the head (sequence number and hash of the newest entry) is also kept
outside the table, in an :class:`AuditHead`: a file next to (ideally away from)
the database, written on every append. ``verify`` compares the table against it.

The limit, stated plainly: someone who can rewrite both the table and the head
file can forge a consistent history; hashes are not keyed. Keep the head file
where the database's writers cannot reach it (another volume, a WORM bucket
synced from it) when that matters. :class:`MemoryAuditHead` only protects
within one process lifetime.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb

from tracing import ConfigError

from ._access import to_json

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditHead",
    "AuditVerdict",
    "FileAuditHead",
    "MemoryAuditHead",
    "append_entry",
    "entry_hash",
    "read_entries",
    "verify_chain",
]

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64


class AuditHead(Protocol):
    """Where the newest entry's sequence number and hash live, outside the table."""

    def load(self) -> tuple[int, str] | None:
        """The stored head, or None before the first entry."""
        ...

    def store(self, seq: int, digest: str) -> None:
        """Record a newer head (an older ``seq`` than the stored one is ignored)."""
        ...


class MemoryAuditHead:
    """A head kept in memory: tamper-evident for this process's lifetime only."""

    def __init__(self) -> None:
        self._head: tuple[int, str] | None = None
        self._lock = threading.Lock()

    def load(self) -> tuple[int, str] | None:
        return self._head

    def store(self, seq: int, digest: str) -> None:
        with self._lock:
            if self._head is None or seq > self._head[0]:
                self._head = (seq, digest)


class FileAuditHead:
    """A head kept in a small JSON file, replaced atomically on every append."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> tuple[int, str] | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(str(self.path), f"unreadable audit head: {exc}") from exc
        return int(data["seq"]), str(data["hash"])

    def store(self, seq: int, digest: str) -> None:
        with self._lock:
            current = self.load()
            if current is not None and seq <= current[0]:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            with tmp.open("w") as handle:
                handle.write(json.dumps({"seq": seq, "hash": digest}))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded control action: who, when, why, what, and the outcome."""

    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    subject: str | None
    why: str | None
    what: dict[str, Any]
    outcome: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.astimezone(UTC).isoformat(),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "subject": self.subject,
            "why": self.why,
            "what": self.what,
            "outcome": self.outcome,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _at(value: datetime) -> str:
    # Microseconds: what a TIMESTAMPTZ keeps, so the hash survives a round trip.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    subject: str | None,
    why: str | None,
    what: Mapping[str, Any],
    outcome: str,
) -> str:
    """SHA-256 over the previous hash and this entry's canonical JSON."""
    body = to_json(
        {
            "seq": seq,
            "at": _at(at),
            "actor": actor,
            "role": role,
            "action": action,
            "subject": subject,
            "why": why,
            "what": what,
            "outcome": outcome,
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def append_entry(
    conn: duckdb.DuckDBPyConnection,
    *,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    subject: str | None,
    why: str | None,
    what: Mapping[str, Any],
    outcome: str,
) -> AuditEntry:
    """Append one entry; call inside the writer's transaction with the change it records."""
    last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    canonical_what: dict[str, Any] = json.loads(to_json(dict(what)))
    at = at.astimezone(UTC)
    digest = entry_hash(
        prev,
        seq=seq,
        at=at,
        actor=actor,
        role=role,
        action=action,
        subject=subject,
        why=why,
        what=canonical_what,
        outcome=outcome,
    )
    conn.execute(
        "INSERT INTO audit_log (seq, occurred_at, actor, role, action, subject, why, what, "
        "outcome, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            seq,
            at,
            actor,
            role,
            action,
            subject,
            why,
            to_json(canonical_what),
            outcome,
            prev,
            digest,
        ],
    )
    return AuditEntry(
        seq, at, actor, role, action, subject, why, canonical_what, outcome, prev, digest
    )


_SELECT = (
    "SELECT seq, occurred_at, actor, role, action, subject, why, what, outcome, prev_hash, hash "
    "FROM audit_log"
)


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    what = json.loads(row[7]) if isinstance(row[7], str) else row[7]
    return AuditEntry(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], what, row[8], row[9], row[10]
    )


def read_entries(
    conn: duckdb.DuckDBPyConnection,
    *,
    limit: int = 100,
    offset: int = 0,
    action: str | None = None,
    subject: str | None = None,
) -> tuple[list[AuditEntry], int]:
    """Entries newest first, optionally for one action or subject, and the total."""
    clauses: list[str] = []
    params: list[Any] = []
    if action:
        clauses.append("action = ?")
        params.append(action)
    if subject:
        clauses.append("subject = ?")
        params.append(subject)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    total_row = conn.execute("SELECT count(*) FROM audit_log" + where, params).fetchone()
    rows = conn.execute(
        _SELECT + where + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, limit, offset]
    ).fetchall()
    return [_entry(row) for row in rows], int(total_row[0]) if total_row else 0


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """The result of checking the chain (and the head kept outside the table)."""

    ok: bool
    entries: int
    last_seq: int | None
    head_seq: int | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_seq": self.last_seq,
            "head_seq": self.head_seq,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


def verify_chain(conn: duckdb.DuckDBPyConnection, head: tuple[int, str] | None) -> AuditVerdict:
    """Recompute every hash in order; report altered, missing or truncated entries."""
    rows = conn.execute(_SELECT + " ORDER BY seq").fetchall()
    problems: list[str] = []
    warnings: list[str] = []
    prev = GENESIS
    expected_seq = 1
    by_seq: dict[int, str] = {}
    for row in rows:
        entry = _entry(row)
        if entry.seq != expected_seq:
            problems.append(
                f"entries {expected_seq}..{entry.seq - 1} are missing"
                if entry.seq > expected_seq
                else f"entry {entry.seq} is out of order"
            )
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.seq} does not link to the entry before it")
        recomputed = entry_hash(
            entry.prev_hash,
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            role=entry.role,
            action=entry.action,
            subject=entry.subject,
            why=entry.why,
            what=entry.what,
            outcome=entry.outcome,
        )
        if recomputed != entry.hash:
            problems.append(f"entry {entry.seq} was altered (its hash does not match)")
        by_seq[entry.seq] = entry.hash
        prev = entry.hash
        expected_seq = entry.seq + 1
    last_seq = max(by_seq) if by_seq else None
    head_seq = head[0] if head else None
    if head is not None:
        seq, digest = head
        if last_seq is None or seq > last_seq:
            problems.append(
                f"the newest entries were removed: the head records entry {seq}, "
                f"the table ends at {last_seq or 0}"
            )
        elif by_seq.get(seq) != digest:
            problems.append(f"entry {seq} differs from the head kept outside the table")
        elif seq < last_seq:
            warnings.append(
                f"entries {seq + 1}..{last_seq} are newer than the recorded head "
                "(a crash between commit and head update, or entries added behind its back)"
            )
    elif rows:
        warnings.append(
            "no head is recorded outside the table: removal of the newest "
            "entries cannot be detected"
        )
    return AuditVerdict(not problems, len(rows), last_seq, head_seq, problems, warnings)
