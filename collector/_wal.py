"""An append-only journal that makes the embedded bus durable on one machine.

``append`` returns once the event is on disk: concurrent appends are written
and fsync'd together (group commit), so one fsync covers a whole burst. Events
are confirmed (``confirm``) once the collector committed them to the lineage;
a segment whose events are all confirmed is deleted. On start, ``replay``
returns every event of the remaining segments, in order; the lineage's dedupe on
event ID absorbs those that were stored but not yet confirmed.

Record layout: 4-byte big-endian length, 4-byte CRC-32 of the body, the body
(the envelope's JSON). A torn last record (power loss, SIGKILL mid-write) fails
its length or CRC check and is cut off; it was never acknowledged.

A record is never replayed forever. Each ``replay`` counts, durably (a
``.tries`` file beside the segment, written before the events are handed
out), how often every unconfirmed event was handed out; one that was handed out
``max_attempts`` times and never confirmed (it crashed the process each time,
say) is moved to ``quarantine/`` instead, as is a record that is not an event
at all. ``quarantined`` lists the quarantined records not yet reported (the bus
turns each into a dead letter, then calls ``mark_reported``) and
``quarantined_total`` counts every record the quarantine holds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError as PydanticValidationError

from tracing import BusError, Event

__all__ = ["MAX_ATTEMPTS", "Journal"]

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">II")
_SUFFIX = ".wal"
_ACKS = ".acks"
_TRIES = ".tries"
_QUARANTINE = "quarantine"
_REPORTED = ".reported"
#: Replays of an unconfirmed event before it is quarantined.
MAX_ATTEMPTS = 5
#: The try count of a record already moved to quarantine (its segment is still
#: needed for other records): skipped, not quarantined again.
_SET_ASIDE = -1


class Journal:
    """A directory of journal segments. ``open``/``close`` are safe twice."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 16 * 1024 * 1024,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_attempts = max_attempts
        #: Records the last ``replay`` set aside: (body, why).
        self.quarantined: list[tuple[bytes, str]] = []
        self.quarantined_total = 0
        self._file: int | None = None
        self._segment = 0
        self._size = 0
        #: event ID -> segment number, for events not yet confirmed.
        self._pending_ids: dict[str, int] = {}
        self._unconfirmed: dict[int, int] = {}
        #: Confirmed event IDs of segments still on disk, written out on close so a
        #: clean restart does not re-deliver what the lineage already holds.
        self._confirmed: dict[int, set[str]] = {}
        self._queue: list[tuple[bytes, str, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.fsyncs = 0

    # -- lifecycle -------------------------------------------------------------

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob(f"*{_SUFFIX}") if p.stem.isdigit())

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{_SUFFIX}"

    def replay(self) -> list[Event]:
        """Every event still in the journal, oldest first (call before ``open``).

        Each event handed out has its try counted first (``.tries``); one already
        handed out ``max_attempts`` times, and any record that is not an event,
        goes to ``quarantine/`` and into ``quarantined`` instead.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        events: list[Event] = []
        self.quarantined = []
        for segment in self._segments():
            path = self._path(segment)
            acks_path = path.with_suffix(_ACKS)
            tries_path = path.with_suffix(_TRIES)
            acked = set(acks_path.read_text().split()) if acks_path.exists() else set()
            before = _read_tries(tries_path)
            tries: dict[str, int] = {}
            data = path.read_bytes()
            set_aside: list[tuple[bytes, str]] = []
            good = 0
            pos = 0
            while pos + _HEADER.size <= len(data):
                length, crc = _HEADER.unpack_from(data, pos)
                body = data[pos + _HEADER.size : pos + _HEADER.size + length]
                if len(body) < length or zlib.crc32(body) != crc:
                    break
                try:
                    event = Event.from_json(body)
                except (PydanticValidationError, ValueError) as exc:
                    key = f"@{pos}"
                    if before.get(key, 0) != _SET_ASIDE:
                        log.error(
                            "journal %s: record at %d is not an event; quarantined", path, pos
                        )
                        set_aside.append((body, f"journal record is not an event: {exc}"[:1000]))
                    tries[key] = _SET_ASIDE
                else:
                    # An acknowledged ID was stored before a clean shutdown.
                    if event.event_id in acked:
                        pass
                    elif before.get(event.event_id, 0) == _SET_ASIDE:
                        tries[event.event_id] = _SET_ASIDE
                    elif before.get(event.event_id, 0) >= self.max_attempts:
                        log.error(
                            "journal %s: event %s was replayed %d times and never stored; "
                            "quarantined",
                            path,
                            event.event_id,
                            before[event.event_id],
                        )
                        set_aside.append(
                            (
                                body,
                                f"journal record replayed {before[event.event_id]} times "
                                "without being stored",
                            )
                        )
                        tries[event.event_id] = _SET_ASIDE
                    else:
                        tries[event.event_id] = before.get(event.event_id, 0) + 1
                        events.append(event)
                        self._track(event.event_id, segment)
                pos += _HEADER.size + length
                good = pos
            if set_aside:
                # Durable in quarantine before the segment may go.
                self._quarantine(segment, set_aside)
            if good < len(data):
                log.warning("journal %s: cut a torn tail of %d bytes", path, len(data) - good)
                with open(path, "r+b") as fh:
                    fh.truncate(good)
            if self._unconfirmed.get(segment, 0) == 0:
                path.unlink()
                acks_path.unlink(missing_ok=True)
                tries_path.unlink(missing_ok=True)
                continue
            # Counted before anything is handed out: a crash while handling these
            # events still counts as a try.
            _write_durably(tries_path, json.dumps(tries, separators=(",", ":")))
            if acked:
                self._confirmed[segment] = acked
        # Everything quarantined and not yet reported, this replay or one that
        # died before the bus turned it into dead letters.
        self.quarantined = self._read_quarantine(f"*{_SUFFIX}")
        self.quarantined_total = self._count_quarantined()
        return events

    def _quarantine(self, segment: int, set_aside: list[tuple[bytes, str]]) -> None:
        directory = self.directory / _QUARANTINE
        directory.mkdir(exist_ok=True)
        # Each quarantine record says why, beside the exact bytes of the record.
        bodies = [
            json.dumps({"why": why, "record": base64.b64encode(body).decode()}).encode()
            for body, why in set_aside
        ]
        chunk = b"".join(_HEADER.pack(len(b), zlib.crc32(b)) + b for b in bodies)
        fd = os.open(
            directory / f"{segment:012d}{_SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        try:
            os.write(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_quarantine(self, pattern: str) -> list[tuple[bytes, str]]:
        out: list[tuple[bytes, str]] = []
        for path in sorted((self.directory / _QUARANTINE).glob(pattern)):
            data = path.read_bytes()
            pos = 0
            while pos + _HEADER.size <= len(data):
                length, _ = _HEADER.unpack_from(data, pos)
                item = json.loads(data[pos + _HEADER.size : pos + _HEADER.size + length])
                out.append((base64.b64decode(item["record"]), str(item["why"])))
                pos += _HEADER.size + length
        return out

    def _count_quarantined(self) -> int:
        return len(self._read_quarantine(f"*{_SUFFIX}")) + len(
            self._read_quarantine(f"*{_REPORTED}")
        )

    def mark_reported(self) -> None:
        """The records in ``quarantined`` are dead letters now (published durably):
        keep them in quarantine, but do not report them again."""
        for path in (self.directory / _QUARANTINE).glob(f"*{_SUFFIX}"):
            target = path.with_suffix(_REPORTED)
            if target.exists():
                # Records quarantined from this segment in an earlier run, reported.
                with open(target, "ab") as fh:
                    fh.write(path.read_bytes())
                path.unlink()
            else:
                os.replace(path, target)
        self.quarantined = []

    async def open(self) -> None:
        """Start a new segment and the group-commit writer."""
        if self._flusher is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = self._segments()
        self._segment = (segments[-1] + 1) if segments else 1
        self._file = self._new_file(self._segment)
        self._flusher = asyncio.create_task(self._flush_forever(), name="journal-flusher")

    async def close(self) -> None:
        """Write what is queued, then close."""
        task, self._flusher = self._flusher, None
        if task is None:
            return
        while self._queue:
            await asyncio.sleep(0.001)
            if task.done():
                break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._file is not None:
            os.close(self._file)
            self._file = None
        self._write_acks()

    def _write_acks(self) -> None:
        """On a clean close: drop fully confirmed segments, and record the confirmed
        IDs of the others so the next ``replay`` skips them."""
        for segment in self._segments():
            if self._unconfirmed.get(segment, 0) == 0:
                self._path(segment).unlink(missing_ok=True)
                self._path(segment).with_suffix(_ACKS).unlink(missing_ok=True)
                self._path(segment).with_suffix(_TRIES).unlink(missing_ok=True)
                continue
            acked = self._confirmed.get(segment)
            if acked:
                tmp = self._path(segment).with_suffix(_ACKS + ".tmp")
                tmp.write_text("\n".join(sorted(acked)))
                os.replace(tmp, self._path(segment).with_suffix(_ACKS))

    def _new_file(self, segment: int) -> int:
        fd = os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # Make the new directory entry durable too, or a crash could lose the file.
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._size = 0
        return fd

    # -- writing ---------------------------------------------------------------

    async def append(self, event: Event) -> None:
        """Return once ``event`` is fsync'd to the journal."""
        if self._flusher is None:
            raise BusError("the journal is not open")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event.to_json(), event.event_id, future))
        self._wake.set()
        await future

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                await asyncio.to_thread(self._write, [body for body, _, _ in batch])
            except OSError as exc:
                error = BusError(f"journal write failed: {exc}")
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, event_id, future in batch:
                self._track(event_id, self._segment)
                if not future.done():
                    future.set_result(None)
            if self._size >= self.segment_bytes:
                self._rotate()

    def _write(self, bodies: list[bytes]) -> None:
        assert self._file is not None
        chunk = b"".join(_HEADER.pack(len(b), zlib.crc32(b)) + b for b in bodies)
        os.write(self._file, chunk)
        os.fsync(self._file)
        self.fsyncs += 1
        self._size += len(chunk)

    def _rotate(self) -> None:
        assert self._file is not None
        os.close(self._file)
        old = self._segment
        self._segment += 1
        self._file = self._new_file(self._segment)
        self._maybe_delete(old)

    # -- confirmation ----------------------------------------------------------

    def _track(self, event_id: str, segment: int) -> None:
        if event_id not in self._pending_ids:
            self._pending_ids[event_id] = segment
            self._unconfirmed[segment] = self._unconfirmed.get(segment, 0) + 1

    def confirm(self, event_ids: Iterable[str]) -> None:
        """These events are stored for good; their segments may go."""
        touched = set()
        for event_id in event_ids:
            segment = self._pending_ids.pop(event_id, None)
            if segment is not None:
                self._unconfirmed[segment] -= 1
                self._confirmed.setdefault(segment, set()).add(event_id)
                touched.add(segment)
        for segment in touched:
            self._maybe_delete(segment)

    def _maybe_delete(self, segment: int) -> None:
        if segment != self._segment and self._unconfirmed.get(segment, 0) == 0:
            self._unconfirmed.pop(segment, None)
            self._confirmed.pop(segment, None)
            with contextlib.suppress(FileNotFoundError):
                self._path(segment).unlink()
            self._path(segment).with_suffix(_ACKS).unlink(missing_ok=True)
            self._path(segment).with_suffix(_TRIES).unlink(missing_ok=True)

    @property
    def unconfirmed(self) -> int:
        """Events written but not yet confirmed."""
        return len(self._pending_ids)


def _read_tries(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except ValueError:
        # A torn write of the counts: start counting again rather than stop replaying.
        log.warning("journal %s: unreadable try counts; counting again", path)
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
