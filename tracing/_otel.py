"""OpenTelemetry set-up and the bridge between spans and event envelopes.

Telemetry never breaks the main path: a missing or bad exporter setting logs and
falls back to no export. Tests install an in-memory exporter with
:func:`setup_tracing` and read finished spans from it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanContext

from ._tracecontext import TraceContextPropagator, header_getter, install_propagator

__all__ = [
    "TraceFields",
    "context_from_headers",
    "context_from_traceparent",
    "current_trace_context",
    "current_trace_ids",
    "inject_headers",
    "setup_tracing",
    "start_step_span",
    "tracer",
]

log = logging.getLogger(__name__)
_propagator = TraceContextPropagator()
_provider: TracerProvider | None = None
_httpx_instrumented = False


def setup_tracing(
    service_name: str = "interlock", exporter: SpanExporter | None = None
) -> TracerProvider:
    """Install a tracer provider for this process (once), the strict W3C
    trace-context propagator as the global one, and instrument httpx.

    With ``exporter`` given (tests), spans go there synchronously. Otherwise spans
    go to OTLP/HTTP when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
    """
    global _provider, _httpx_instrumented
    # Stable HTTP semantic conventions for the httpx client spans.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    install_propagator()
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(_provider)
        if exporter is None and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            # The exporter is optional plumbing: a bad endpoint must not stop the product.
            except Exception:
                log.exception("OTLP exporter could not be set up; spans are not exported")
    if exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
    if not _httpx_instrumented:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().instrument()
        _httpx_instrumented = True
    return _provider


def tracer() -> trace.Tracer:
    return trace.get_tracer("interlock")


def context_from_headers(headers: Any) -> otel_context.Context | None:
    """The context that continues the trace of incoming ``headers``, or ``None``.

    ``headers``: Starlette/httpx ``Headers``, a mapping, or ``(name, value)``
    pairs such as Kafka headers; every field of a name is read, in any case, so
    a duplicated ``traceparent`` is seen (and refused).
    """
    ctx = _propagator.extract(headers, getter=header_getter)
    span = trace.get_current_span(ctx)
    return ctx if span.get_span_context().is_valid else None


def context_from_traceparent(
    traceparent: str | None, tracestate: str | None = None
) -> otel_context.Context | None:
    """The OpenTelemetry context that continues the trace named by ``traceparent``."""
    if not traceparent:
        return None
    carrier = [("traceparent", traceparent)]
    if tracestate:
        carrier.append(("tracestate", tracestate))
    return context_from_headers(carrier)


@dataclass(frozen=True, slots=True)
class TraceFields:
    """A span's W3C trace context as the envelope stores it."""

    trace_id: str = ""
    span_id: str = ""
    trace_flags: int | None = None
    tracestate: str = ""


def current_trace_context(span: Span | None = None) -> TraceFields:
    """The trace context of ``span`` or the current span (empty when there is none)."""
    ctx: SpanContext = (span or trace.get_current_span()).get_span_context()
    if not ctx.is_valid:
        return TraceFields()
    return TraceFields(
        f"{ctx.trace_id:032x}",
        f"{ctx.span_id:016x}",
        int(ctx.trace_flags),
        ctx.trace_state.to_header() if ctx.trace_state else "",
    )


def current_trace_ids(span: Span | None = None) -> tuple[str, str]:
    """(trace_id, span_id) of ``span`` or the current span, as W3C hex strings."""
    fields = current_trace_context(span)
    return fields.trace_id, fields.span_id


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add ``traceparent``/``tracestate`` of the current span to ``headers``."""
    _propagator.inject(headers)
    return headers


@contextmanager
def start_step_span(
    name: str,
    *,
    parent_traceparent: str | None = None,
    parent_tracestate: str | None = None,
    attributes: dict[str, str] | None = None,
) -> Iterator[Span]:
    """A span for one flow step, continuing the trace of the event that caused it
    (its flags and tracestate too: a cause that was not sampled gives a step
    span that is not sampled either)."""
    ctx = context_from_traceparent(parent_traceparent, parent_tracestate)
    with tracer().start_as_current_span(name, context=ctx, attributes=attributes or {}) as span:
        yield span
