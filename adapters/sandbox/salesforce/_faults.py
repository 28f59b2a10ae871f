"""Injected faults, set through ``POST /_sandbox/faults`` (shared by both sandboxes)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Faults"]

_KEYS = ("rate_limit_next", "fail_next", "latency_ms", "retry_after")


class Faults:
    """Counters of faults still to inject; each API request consumes at most one.

    ``rate_limit_next``: that many requests answer the vendor's rate-limit error;
    ``fail_next``: that many answer a 5xx; ``latency_ms``: every request waits
    that long first; ``retry_after``: the seconds a rate-limit answer asks for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rate_limit_next = 0
        self.fail_next = 0
        self.latency_ms = 0.0
        self.retry_after = 1
        self.injected: dict[str, int] = {"rate_limited": 0, "failed": 0}

    def configure(self, body: Any) -> dict[str, Any]:
        """Apply a faults request; raises ``ValueError`` naming a bad key or value."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(body) - set(_KEYS)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for key, value in body.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
            if key != "latency_ms" and int(value) != value:
                raise ValueError(f"{key} must be an integer")
        with self._lock:
            for key, value in body.items():
                setattr(self, key, float(value) if key == "latency_ms" else int(value))
            return self.snapshot()

    def take(self) -> str | None:
        """The fault this request gets: ``"rate_limit"``, ``"fail"`` or ``None``."""
        with self._lock:
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                self.injected["rate_limited"] += 1
                return "rate_limit"
            if self.fail_next > 0:
                self.fail_next -= 1
                self.injected["failed"] += 1
                return "fail"
            return None

    def snapshot(self) -> dict[str, Any]:
        return {
            "rate_limit_next": self.rate_limit_next,
            "fail_next": self.fail_next,
            "latency_ms": self.latency_ms,
            "retry_after": self.retry_after,
            "injected": dict(self.injected),
        }
