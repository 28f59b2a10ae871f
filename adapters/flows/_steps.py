"""Running one flow step: a span, retries, and exactly one outcome event.

A step reacts to a cause event. Each failed try that will be retried emits a
``retrying`` event; the end is either an ``ok`` event carrying the step's result
or a ``dead_lettered`` event carrying the reason. The outcome event's ID is made
before the step runs so the step can leave it in the target system (billing
metadata, say) for later events to point back to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opentelemetry.trace import Status as SpanStatus
from opentelemetry.trace import StatusCode

from collector import Bus
from tracing import (
    ErrorInfo,
    Event,
    InterlockError,
    Status,
    System,
    current_trace_context,
    mask_payload,
    new_event_id,
    start_step_span,
)

from .._retry import RetryPolicy, retry_call

__all__ = ["StepOutcome", "StepRunner"]


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What a successful step reports: the entity it produced and its payload."""

    entity_type: str
    entity_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    #: False when the target already held the effect (an idempotent repeat).
    created: bool = True
    amount: Decimal | None = None
    currency: str | None = None
    customer_id: str | None = None
    #: A step can end in a business state instead of its effect (a credit hold: the
    #: ERP refused to confirm): the ``ok`` outcome then carries this kind and step,
    #: so the step it ran stays pending in the lineage.
    kind: str | None = None
    step: str | None = None


StepAction = Callable[[str], Awaitable[StepOutcome]]


class StepRunner:
    """Runs steps for flows and publishes their events on the bus."""

    def __init__(
        self,
        bus: Bus,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._bus = bus
        self._policy = policy
        self._sleep = sleep

    async def run(
        self,
        cause: Event,
        *,
        kind: str,
        step: str,
        target: str,
        action: StepAction,
        source: System = System.INTERLOCK,
        policy: RetryPolicy | None = None,
        idempotency_key: str | None = None,
    ) -> Event:
        """Run ``action(outcome_event_id)`` under the retry policy; publish and return
        the outcome event (ok or dead_lettered)."""
        outcome_id = new_event_id()
        # One effect per step and transaction, unless the caller names a finer key
        # (one posted invoice per billing invoice, say).
        key = idempotency_key or f"{step}:{cause.correlation_id}"
        attrs = {
            "interlock.step": step,
            "interlock.correlation_id": cause.correlation_id,
            "interlock.causation_id": cause.event_id,
            "interlock.target": str(target),
        }
        with start_step_span(
            step,
            parent_traceparent=cause.traceparent,
            parent_tracestate=cause.tracestate,
            attributes=attrs,
        ) as span:
            trace = current_trace_context(span)
            attempts = 1
            started = time.perf_counter()

            def base(**fields: Any) -> dict[str, Any]:
                return {
                    "correlation_id": cause.correlation_id,
                    "causation_id": cause.event_id,
                    "trace_id": trace.trace_id,
                    "span_id": trace.span_id,
                    "trace_flags": trace.trace_flags,
                    "tracestate": trace.tracestate,
                    "idempotency_key": key,
                    "source": source,
                    "target": target,
                    "kind": kind,
                    "step": step,
                    "amount": cause.amount,
                    "currency": cause.currency,
                    "customer_id": cause.customer_id,
                    "replay_of": cause.replay_of,
                    "replay_id": cause.replay_id,
                    **fields,
                }

            async def on_retry(attempt: int, error: InterlockError, delay: float) -> None:
                nonlocal attempts
                attempts = attempt + 1
                span.add_event(
                    "retry",
                    {"attempt": attempt, "error.type": type(error).__name__, "delay_s": delay},
                )
                await self._bus.publish(
                    Event(
                        **base(
                            entity_type=cause.entity_type,
                            entity_id=cause.entity_id,
                            status=Status.RETRYING,
                            attempt=attempt,
                            error=ErrorInfo.from_exception(error),
                            payload={"retry_in_s": round(delay, 3)},
                        )
                    )
                )

            try:
                outcome = await retry_call(
                    lambda: action(outcome_id),
                    policy or self._policy,
                    on_retry=on_retry,
                    sleep=self._sleep,
                )
            except InterlockError as exc:
                span.set_status(SpanStatus(StatusCode.ERROR, exc.reason.value))
                span.set_attribute("error.type", type(exc).__name__)
                event = Event(
                    **base(
                        event_id=outcome_id,
                        entity_type=cause.entity_type,
                        entity_id=cause.entity_id,
                        status=Status.DEAD_LETTERED,
                        attempt=attempts,
                        duration_ms=(time.perf_counter() - started) * 1000,
                        error=ErrorInfo.from_exception(exc),
                        payload={"input_event": cause.event_id, "input_kind": cause.kind},
                    )
                )
                await self._bus.publish(event)
                return event
            event = Event(
                **base(
                    event_id=outcome_id,
                    entity_type=outcome.entity_type,
                    entity_id=outcome.entity_id,
                    status=Status.OK,
                    attempt=attempts,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    payload=mask_payload({**outcome.payload, "created": outcome.created}),
                    amount=outcome.amount if outcome.amount is not None else cause.amount,
                    currency=outcome.currency or cause.currency,
                    customer_id=outcome.customer_id or cause.customer_id,
                    kind=outcome.kind or kind,
                    step=outcome.step or step,
                )
            )
            await self._bus.publish(event)
            return event
