"""The shared vocabulary of Interlock: the event envelope, identifiers, errors,
PII masking and OpenTelemetry trace-context propagation."""

from ._envelope import SCHEMA_VERSION, ErrorInfo, Event, Status, System
from ._errors import (
    AuthError,
    BusError,
    ConfigError,
    ConflictError,
    DownstreamUnavailable,
    IntegrationError,
    InterlockError,
    MappingError,
    RateLimited,
    Reason,
    RemoteError,
    SignatureError,
    StoreError,
    ValidationError,
)
from ._ids import correlation_id_for, new_event_id
from ._masking import REDACTED, mask_email, mask_payload, redact_secrets
from ._otel import (
    context_from_traceparent,
    current_trace_ids,
    inject_headers,
    setup_tracing,
    start_step_span,
    tracer,
)

__all__ = [
    "REDACTED",
    "SCHEMA_VERSION",
    "AuthError",
    "BusError",
    "ConfigError",
    "ConflictError",
    "DownstreamUnavailable",
    "ErrorInfo",
    "Event",
    "IntegrationError",
    "InterlockError",
    "MappingError",
    "RateLimited",
    "Reason",
    "RemoteError",
    "SignatureError",
    "Status",
    "StoreError",
    "System",
    "ValidationError",
    "context_from_traceparent",
    "correlation_id_for",
    "current_trace_ids",
    "inject_headers",
    "mask_email",
    "mask_payload",
    "new_event_id",
    "redact_secrets",
    "setup_tracing",
    "start_step_span",
    "tracer",
]
