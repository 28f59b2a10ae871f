"""Suite-wide set-up: one tracer provider with an in-memory exporter, so every
test sees real trace and span IDs and can read finished spans."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracing import setup_tracing

_EXPORTER = InMemorySpanExporter()
setup_tracing("interlock-tests", exporter=_EXPORTER)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The finished spans of this test (cleared before it starts)."""
    _EXPORTER.clear()
    return _EXPORTER
