"""Identifiers: time-ordered event IDs (UUIDv7) and deterministic correlation IDs."""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["correlation_id_for", "new_event_id"]

_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4b7e-9a55-2f5d0c9e7a10")
_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a counter and random bits.

    IDs made in one process sort by creation time, even within one millisecond.
    """
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq = (_seq + 1) & 0xFFF
            if _seq == 0:  # 4096 IDs in one millisecond: borrow the next one
                ms += 1
        else:
            _seq = 0
        _last_ms = ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def correlation_id_for(system: str, entity_type: str, entity_id: str) -> str:
    """The correlation ID of the business transaction started by one source record.

    Deterministic, so a duplicate delivery of the same record lands in the same
    transaction instead of starting a second one.

    >>> a = correlation_id_for("crm", "opportunity", "006A")
    >>> a == correlation_id_for("crm", "opportunity", "006A")
    True
    """
    return str(uuid.uuid5(_NAMESPACE, f"{system}:{entity_type}:{entity_id}"))
