"""How an event travels on Kafka: key, headers, body, and the way back.

The key is the correlation ID (one transaction stays in order on one
partition). Headers let a consumer route and trace without decoding the body:

    traceparent, tracestate    W3C trace context of the producer span (a child of
                               the event's span: same trace, flags, tracestate)
    correlation-id             the business transaction
    idempotency-key            the step's idempotency key
    event-id, event-kind       the envelope's ID and kind
    schema-version             the envelope's schema version

A dead letter keeps the original key, body and headers and adds
``dead-letter-reason``, ``dead-letter-message`` and ``original-topic`` /
``-partition`` / ``-offset``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError as PydanticValidationError

from tracing import (
    ENVELOPE,
    SCHEMA_VERSION,
    EnvelopeBoundsError,
    ErrorInfo,
    Event,
    Reason,
    Status,
    System,
    envelope_bounds_error,
    layout_of,
)

from ._columns import EnvelopeColumns

__all__ = [
    "H_CORRELATION",
    "H_DL_MESSAGE",
    "H_DL_REASON",
    "H_EVENT_ID",
    "H_IDEMPOTENCY",
    "H_KIND",
    "H_SCHEMA",
    "Decoded",
    "Headers",
    "Rejected",
    "dead_letter_headers",
    "decode_batch",
    "decode_columns",
    "encode_event",
    "header",
    "rejection_event",
]

Headers = list[tuple[str, bytes]]

H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"
# The envelope's own headers are declared on its fields (``Stored(header=...)``).
H_CORRELATION = ENVELOPE.header("correlation_id")
H_IDEMPOTENCY = ENVELOPE.header("idempotency_key")
H_EVENT_ID = ENVELOPE.header("event_id")
H_KIND = ENVELOPE.header("kind")
H_SCHEMA = ENVELOPE.header("schema_version")
H_DL_REASON = "dead-letter-reason"
H_DL_MESSAGE = "dead-letter-message"
H_ORIG_TOPIC = "original-topic"
H_ORIG_PARTITION = "original-partition"
H_ORIG_OFFSET = "original-offset"

_MAX_REASON_TEXT = 500
_NAMESPACE = uuid.UUID("3b8f0c1e-5a7d-4e2b-9c61-0d4f2a7b9e35")


def encode_event(event: Event, trace_headers: dict[str, str]) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) of one event; ``trace_headers`` from the producer span."""
    headers: Headers = [(k, v.encode()) for k, v in trace_headers.items()]
    headers += [
        (name, str(getattr(event, field)).encode())
        for name, field in layout_of(type(event)).headers
    ]
    return event.correlation_id.encode(), event.to_json(), headers


def header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    """The first value of header ``name`` as text (``None`` when absent or not UTF-8)."""
    for key, value in headers:
        if key == name:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that cannot become an event, and why."""

    index: int
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class Decoded:
    """The events of a batch (in order) and the rejected messages (by index)."""

    events: list[tuple[int, Event]]
    rejected: list[Rejected]


def _check_headers(headers: Sequence[tuple[str, bytes]]) -> str | None:
    version = header(headers, H_SCHEMA)
    if version is not None:
        try:
            number = int(version)
        except ValueError:
            return f"schema-version header is not a number: {version[:40]!r}"
        if number > SCHEMA_VERSION:
            return f"schema version {number} is newer than this collector's {SCHEMA_VERSION}"
    return None


def _check_event(event: Event, headers: Sequence[tuple[str, bytes]]) -> str | None:
    if event.schema_version > SCHEMA_VERSION:
        return (
            f"schema version {event.schema_version} is newer than this collector's {SCHEMA_VERSION}"
        )
    corr = header(headers, H_CORRELATION)
    if corr is not None and corr != event.correlation_id:
        return "correlation-id header does not match the body"
    return None


def _why(exc: PydanticValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"[:_MAX_REASON_TEXT]


def _one(value: bytes | None) -> Event | str:
    if not value:
        return "empty message body"
    try:
        event = Event.from_json(value)
    except PydanticValidationError as exc:
        return _why(exc)
    problem = envelope_bounds_error(event)
    return event if problem is None else problem[:_MAX_REASON_TEXT]


def decode_columns(
    values: Sequence[bytes | None], headers: Sequence[Sequence[tuple[str, bytes]]]
) -> tuple[EnvelopeColumns, list[Rejected]]:
    """``decode_batch`` straight into lineage columns (the collector's hot path).

    Same checks and the same rejection reasons as ``decode_batch``; the good
    bodies become rows of one ``EnvelopeColumns`` in log order, without an
    ``Event`` or a payload dict in between.
    """
    columns = EnvelopeColumns()
    rejected: list[Rejected] = []
    for index, value in enumerate(values):
        hdrs = headers[index]
        problem = _check_headers(hdrs)
        if problem is None and not value:
            problem = "empty message body"
        if problem is None:
            assert value is not None
            try:
                columns.add_json(value)
            except PydanticValidationError as exc:
                problem = _why(exc)
            except EnvelopeBoundsError as exc:
                problem = exc.message[:_MAX_REASON_TEXT]
            else:
                version = columns.last("schema_version")
                corr = header(hdrs, H_CORRELATION)
                if version > SCHEMA_VERSION:
                    problem = (
                        f"schema version {version} is newer than this collector's {SCHEMA_VERSION}"
                    )
                elif corr is not None and corr != columns.last("correlation_id"):
                    problem = "correlation-id header does not match the body"
                if problem is not None:
                    columns.drop_last()
        if problem is not None:
            rejected.append(Rejected(index, Reason.VALIDATION, problem))
    return columns, rejected


def decode_batch(
    values: Sequence[bytes | None], headers: Sequence[Sequence[tuple[str, bytes]]]
) -> Decoded:
    """Decode and validate a batch of message bodies, keeping their order.

    Each body is validated alone (not joined into one JSON array: crafted
    bodies could then merge or split and shift every event after them).
    """
    events: list[tuple[int, Event]] = []
    rejected: list[Rejected] = []
    for index, value in enumerate(values):
        hdrs = headers[index]
        problem = _check_headers(hdrs)
        if problem is not None:
            rejected.append(Rejected(index, Reason.VALIDATION, problem))
            continue
        result = _one(value)
        if isinstance(result, str):
            rejected.append(Rejected(index, Reason.VALIDATION, result))
            continue
        problem = _check_event(result, hdrs)
        if problem is not None:
            rejected.append(Rejected(index, Reason.VALIDATION, problem))
            continue
        events.append((index, result))
    return Decoded(events, rejected)


def rejection_event(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    reason: Reason,
    message: str,
    dead_letter_topic: str,
    size: int,
    step: str = "collector.decode",
) -> Event:
    """The lineage record of a message sent to the dead-letter topic.

    Its ID is derived from the message's place in the log, so a redelivery after
    a crash is deduplicated rather than counted twice. The body is not copied
    (it may hold unmasked data); it stays in the dead-letter topic for replay.
    ``step`` says where it was refused: ``collector.decode`` (it did not decode or
    validate) or ``collector.store`` (the lineage could not take it).
    """
    where = f"{topic}/{partition}/{offset}"
    correlation = header(headers, H_CORRELATION)
    if not correlation and key:
        correlation = key.decode(errors="replace")
    correlation = correlation or f"kafka:{where}"
    event_id = str(uuid.uuid5(_NAMESPACE, where))
    return Event(
        event_id=event_id,
        correlation_id=correlation[:200],
        idempotency_key=f"dead-letter:{where}",
        source=System.INTERLOCK,
        kind="message.rejected",
        step=step,
        entity_type="kafka_message",
        entity_id=where,
        status=Status.DEAD_LETTERED,
        payload={
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "size": size,
            "dead_letter_topic": dead_letter_topic,
            "event_kind": header(headers, H_KIND),
            "event_id": header(headers, H_EVENT_ID),
        },
        error=ErrorInfo(reason=reason, message=message, retriable=False),
    )


def dead_letter_headers(
    headers: Sequence[tuple[str, bytes]],
    *,
    topic: str,
    partition: int,
    offset: int,
    reason: Reason,
    message: str,
) -> Headers:
    """The original headers plus the dead-letter reason and origin."""
    return [
        *headers,
        (H_DL_REASON, str(reason).encode()),
        (H_DL_MESSAGE, message[:_MAX_REASON_TEXT].encode()),
        (H_ORIG_TOPIC, topic.encode()),
        (H_ORIG_PARTITION, str(partition).encode()),
        (H_ORIG_OFFSET, str(offset).encode()),
    ]
