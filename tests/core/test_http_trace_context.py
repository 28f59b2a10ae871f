"""Every adapter's own httpx client sends the current trace context, with or
without the httpx instrumentation (a MockTransport is not instrumented)."""

from __future__ import annotations

import httpx

from adapters._http import HttpAdapter
from tracing import context_from_traceparent, tracer

T = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_an_adapters_client_carries_traceparent_flags_and_tracestate() -> None:
    sent: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers)
        return httpx.Response(200, json={})

    adapter = HttpAdapter(transport=httpx.MockTransport(handler), base_url="http://erp")
    ctx = context_from_traceparent(f"00-{T}-00f067aa0ba902b7-00", "congo=t61rcWkgMzE")
    async with adapter:
        with tracer().start_as_current_span("erp.invoice.post", context=ctx):
            await adapter._client.get("/x")
        await adapter._client.get("/y")  # no trace: nothing invented
    assert sent[0]["traceparent"].startswith(f"00-{T}-")
    assert sent[0]["traceparent"].endswith("-00")
    assert sent[0]["tracestate"] == "congo=t61rcWkgMzE"
    assert "traceparent" not in sent[1]
