"""Durable poll positions: where each change feed was read up to, kept beside the lineage.

One JSON file (``<lineage>.positions.json``) holds every poller's position by name.
A position is written only after the events read up to it are acknowledged
(published: the embedded bus has fsync'd them to its journal, Kafka has acked
them), so a crash between publishing and writing re-reads those events on
restart (the readers recognise them) and never skips one. Writes are atomic:
a temporary file is written and fsync'd, renamed over the old one, and the
directory fsync'd, so a crash leaves either the old positions or the new ones.

A time-ordered feed is read from its position minus an overlap (late commits
within the same instant are not missed); :class:`TimeCursor` keeps the keys
already read inside that overlap so the re-read is recognised, not repeated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tracing import StoreError

__all__ = ["PositionStore", "TimeCursor", "positions_path_for"]

log = logging.getLogger(__name__)


def positions_path_for(lineage_path: str | Path) -> Path | None:
    """``<lineage>.positions.json`` beside a lineage file; ``None`` for ``:memory:``."""
    if str(lineage_path) == ":memory:":
        return None
    path = Path(lineage_path)
    return path.with_name(path.name + ".positions.json")


class PositionStore:
    """Named positions (JSON objects), durable in ``path`` or in memory when ``path`` is None.

    ``load()`` reads the file once; ``put`` replaces one position and writes the
    whole file atomically (writes are serialised). A damaged file is an error
    that names it: guessing a position could skip events.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._positions: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self.writes = 0

    def load(self) -> PositionStore:
        if self.path is None or not self.path.exists():
            return self
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"poll positions in {self.path} cannot be read: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise StoreError(f"poll positions in {self.path} are not a JSON object of objects")
        self._positions = data
        return self

    def get(self, name: str) -> dict[str, Any] | None:
        value = self._positions.get(name)
        return dict(value) if value is not None else None

    async def put(self, name: str, value: Mapping[str, Any]) -> None:
        """Record ``value`` as ``name``'s position; durable when this returns."""
        async with self._lock:
            self._positions[name] = dict(value)
            if self.path is not None:
                snapshot = json.dumps(self._positions, sort_keys=True)
                try:
                    await asyncio.to_thread(_write_atomically, self.path, snapshot)
                except OSError as exc:
                    raise StoreError(f"cannot write poll positions to {self.path}: {exc}") from exc
            self.writes += 1


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass
class TimeCursor:
    """A time position plus the keys already read at or after ``at - overlap``.

    ``read_from`` is where the next read starts; ``fresh(key)`` says whether a
    key (an event ID, an ``ID@modstamp``) has not been read yet; ``advance``
    marks one read and moves the position; ``prune`` forgets keys older than
    the overlap, so the cursor stays small.
    """

    at: datetime
    overlap: timedelta
    seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def read_from(self) -> datetime:
        return self.at - self.overlap

    def fresh(self, key: str) -> bool:
        return key not in self.seen

    def advance(self, key: str, when: datetime) -> None:
        self.seen[key] = when
        self.at = max(self.at, when)

    def mark(self, key: str, when: datetime) -> None:
        """Remember ``key`` as read without moving the position (a webhook's event)."""
        self.seen[key] = when

    def prune(self) -> None:
        horizon = self.read_from
        self.seen = {k: w for k, w in self.seen.items() if w >= horizon}

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "seen": {k: w.isoformat() for k, w in sorted(self.seen.items())},
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any] | None, *, default_at: datetime, overlap: timedelta
    ) -> TimeCursor:
        """The stored cursor, or one at ``default_at`` when nothing is stored yet."""
        if not data:
            return cls(at=default_at, overlap=overlap)
        try:
            at = _aware(datetime.fromisoformat(str(data["at"])))
            seen = {str(k): _aware(datetime.fromisoformat(str(v))) for k, v in data["seen"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"a stored poll position is damaged: {exc}") from exc
        return cls(at=at, overlap=overlap, seen=seen)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
