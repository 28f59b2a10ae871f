from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracing import context_from_traceparent, current_trace_ids, setup_tracing, start_step_span


def test_step_span_continues_the_trace_of_its_cause():
    exporter = InMemorySpanExporter()
    setup_tracing("test", exporter=exporter)
    parent = f"00-{'1' * 32}-{'2' * 16}-01"
    with start_step_span("erp.order.create", parent_traceparent=parent) as span:
        trace_id, span_id = current_trace_ids(span)
    assert trace_id == "1" * 32
    assert len(span_id) == 16 and span_id != "2" * 16
    finished = [s for s in exporter.get_finished_spans() if s.name == "erp.order.create"]
    assert finished and finished[-1].parent is not None
    assert finished[-1].parent.span_id == int("2" * 16, 16)


def test_invalid_traceparent_starts_a_new_trace():
    assert context_from_traceparent("00-zz-yy-01") is None
    assert context_from_traceparent(None) is None
