from __future__ import annotations

import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters import raise_for_response
from adapters.sandbox._asgi import ThreadedServer
from adapters.sandbox._faults import FaultProxy
from tracing import DownstreamUnavailable, RateLimited


async def _echo(request):
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.url.query,
            "body": (await request.body()).decode(),
        }
    )


@pytest.fixture(scope="module")
def proxy():
    upstream = ThreadedServer(
        Starlette(routes=[Route("/{p:path}", _echo, methods=["GET", "POST"])])
    )
    upstream.start()
    proxy = FaultProxy(upstream.url, name="ERP").start()
    yield proxy
    proxy.stop()
    upstream.stop()


def test_forwards_when_healthy(proxy):
    proxy.clear()
    r = httpx.post(f"{proxy.url}/erp/rpc/?a=1", content=b"hello")
    assert r.json() == {"path": "/erp/rpc/", "query": "a=1", "body": "hello"}


def test_down_is_a_503_our_adapters_call_downstream_unavailable(proxy):
    proxy.set(down=True)
    r = httpx.get(f"{proxy.url}/x")
    assert r.status_code == 503
    with pytest.raises(DownstreamUnavailable):
        raise_for_response(r, system="erp")
    proxy.clear()
    assert httpx.get(f"{proxy.url}/x").status_code == 200


def test_rate_limit_carries_retry_after(proxy):
    proxy.set(rate_limit=1.0, retry_after=3)
    r = httpx.get(f"{proxy.url}/x")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    with pytest.raises(RateLimited) as info:
        raise_for_response(r, system="billing")
    assert info.value.retry_after == 3.0
    proxy.clear()


def test_faults_expire_and_can_be_set_over_http(proxy):
    r = httpx.post(f"{proxy.url}/_faults", json={"down": True, "duration": 0.3})
    assert r.json()["faults"]["down"] is True
    assert httpx.get(f"{proxy.url}/x").status_code == 503
    time.sleep(0.35)
    assert httpx.get(f"{proxy.url}/x").status_code == 200
    assert httpx.post(f"{proxy.url}/_faults", json={"flood": 1}).status_code == 422


def test_duplicate_delivers_twice_and_answers_once(proxy):
    proxy.set(duplicate=1.0)
    before = proxy.stats["duplicated"]
    r = httpx.post(f"{proxy.url}/webhooks/stripe", content=b"{}")
    proxy.clear()
    assert r.status_code == 200
    assert proxy.stats["duplicated"] == before + 1
