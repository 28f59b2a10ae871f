"""Interlock's one exception tree.

    InterlockError
    ├── ConfigError                 a setting is missing or invalid (names the setting)
    ├── NotFoundError               404: a request names something that does not exist
    ├── UnauthorizedError           401: a caller of our API has no credential we know
    ├── ForbiddenError              403: a known caller lacks the role for the action
    ├── ValidationError             an event or payload breaks the canonical contract
    │   ├── MappingError            a vendor value has no canonical mapping (product, account)
    │   └── EnvelopeBoundsError     an envelope value is out of the storable range (names the field)
    ├── IntegrationError            a call to an external system failed
    │   ├── AuthError               401/403: credentials or signature rejected
    │   ├── RateLimited             429: carries ``retry_after`` seconds
    │   ├── DownstreamUnavailable   connection refused, timeout, 5xx
    │   ├── ConflictError           409 or a business rule of the target (credit hold)
    │   └── RemoteError             any other answer we did not expect
    ├── SignatureError              a webhook signature is missing, forged or stale
    ├── BusError                    the event bus cannot accept or deliver
    └── StoreError                  the lineage store failed

Retry decisions read ``retriable`` and ``reason``; they never parse messages.
``http_status`` is how the control API answers an error of that class that reaches it
(as RFC 9457 problem details, ``collector._problem``, the one place errors become
answers): 404 not found, 401 unauthenticated (with ``WWW-Authenticate``), 403 forbidden,
422 invalid input, 409 conflict, 503 store or bus unavailable (with ``Retry-After``), 502
a connected system failed, 500 anything else. :class:`AuthError` is an external system
refusing *our* credentials; :class:`UnauthorizedError` and :class:`ForbiddenError` are
Interlock refusing a caller of its own API.
Foreign errors (httpx, DuckDB, aiokafka, Tryton) are caught at the boundary and
re-raised as one of these ``from exc``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AuthError",
    "BusError",
    "ConfigError",
    "ConflictError",
    "DownstreamUnavailable",
    "EnvelopeBoundsError",
    "ForbiddenError",
    "IntegrationError",
    "InterlockError",
    "MappingError",
    "NotFoundError",
    "RateLimited",
    "Reason",
    "RemoteError",
    "SignatureError",
    "StoreError",
    "UnauthorizedError",
    "ValidationError",
]


class Reason(StrEnum):
    """Why a step failed; the dead-letter reason class."""

    VALIDATION = "validation"
    MAPPING = "mapping"
    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    DOWNSTREAM_UNAVAILABLE = "downstream_unavailable"
    CONFLICT = "conflict"
    UNKNOWN = "unknown"


class InterlockError(Exception):
    """Root of every error Interlock raises on purpose."""

    reason: Reason = Reason.UNKNOWN
    retriable: bool = False
    #: The control API's answer to this error.
    http_status: int = 500

    def __init__(self, message: str, *, system: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.system = system


class ConfigError(InterlockError):
    """A setting is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


class NotFoundError(InterlockError):
    """Raised when a request names something that does not exist (a transaction, an SLA
    rule, an alert); the control API answers 404 with the message as ``detail``."""

    http_status = 404


class UnauthorizedError(InterlockError):
    """Raised when a caller of Interlock's own API brings no credential, or one we do not
    know (the control API's role check); answered 401 with ``WWW-Authenticate:``
    ``challenge``. Not :class:`AuthError`, which is a connected system refusing ours."""

    http_status = 401
    reason = Reason.AUTH
    #: The ``WWW-Authenticate`` challenge of the answer (RFC 9110 section 11.6.1).
    challenge: str = "Bearer"

    def __init__(
        self, message: str, *, challenge: str | None = None, system: str | None = None
    ) -> None:
        super().__init__(message, system=system)
        if challenge is not None:
            self.challenge = challenge


class ForbiddenError(InterlockError):
    """Raised when a known caller lacks the role an action needs (the control API's role
    check); answered 403. A refusal with no credential at all is :class:`UnauthorizedError`."""

    http_status = 403
    reason = Reason.AUTH


class ValidationError(InterlockError):
    http_status = 422
    reason = Reason.VALIDATION

    def __init__(self, message: str, *, field: str | None = None, system: str | None = None):
        super().__init__(message, system=system)
        self.field = field


class MappingError(ValidationError):
    reason = Reason.MAPPING


class EnvelopeBoundsError(ValidationError):
    """An envelope breaks a bound of the lineage (amount range, timestamp range,
    size); ``field`` names the offending field and the message says why."""

    def __init__(self, message: str, *, field: str, system: str | None = None) -> None:
        super().__init__(message, field=field, system=system)


class IntegrationError(InterlockError):
    """A call to an external system failed."""

    http_status = 502

    def __init__(
        self, message: str, *, system: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, system=system)
        self.status = status


class AuthError(IntegrationError):
    reason = Reason.AUTH


class RateLimited(IntegrationError):
    http_status = 503
    reason = Reason.RATE_LIMIT
    retriable = True

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, system=system, status=status)
        self.retry_after = retry_after


class DownstreamUnavailable(IntegrationError):
    http_status = 503
    reason = Reason.DOWNSTREAM_UNAVAILABLE
    retriable = True


class ConflictError(IntegrationError):
    http_status = 409
    reason = Reason.CONFLICT


class RemoteError(IntegrationError):
    reason = Reason.UNKNOWN


class SignatureError(InterlockError):
    http_status = 400
    reason = Reason.AUTH


class BusError(InterlockError):
    http_status = 503
    retriable = True


class StoreError(InterlockError):
    http_status = 503
    retriable = True
