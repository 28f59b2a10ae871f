"""Replay's errors, as branches of the one tree in :mod:`tracing._errors`.

    InterlockError
    └── ReplayError                 a replay or dead-letter action cannot be done
        ├── NotFound                no such replay or dead letter (HTTP 404)
        ├── StateConflict           not in a state that allows the action (HTTP 409)
        └── ApprovalRefused         four-eyes: the requester may not approve (HTTP 403)

Bad selections and corrections raise :class:`tracing.ValidationError` (HTTP 422).
"""

from __future__ import annotations

from tracing import InterlockError

__all__ = ["ApprovalRefused", "NotFound", "ReplayError", "StateConflict"]


class ReplayError(InterlockError):
    """A replay or dead-letter action cannot be done."""


class NotFound(ReplayError):
    """No such replay or dead letter."""

    http_status = 404


class StateConflict(ReplayError):
    """The replay or dead letter is not in a state that allows the action."""

    http_status = 409


class ApprovalRefused(ReplayError):
    """The four-eyes rule refuses this approval (the requester approving their own)."""

    http_status = 403
