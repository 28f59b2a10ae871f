"""A fault-injecting HTTP proxy placed in front of a real system.

The ERP and billing stay real; the faults are on the wire, where production
sees them: a gateway answering 503 while the ERP is down, added latency, a 429
storm with ``Retry-After``. Faults are switched on and off with
:meth:`FaultProxy.set` (the demo's scheduler and the tests do that) or by
``POST /_faults`` on the proxy itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._asgi import ThreadedServer

__all__ = ["FaultProxy", "Faults"]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}


@dataclass(frozen=True)
class Faults:
    """The faults in force. ``down``: answer 503 as a gateway would.
    ``rate_limit``: answer 429 with ``Retry-After: retry_after`` to a share of
    requests (1.0 = all). ``latency``: seconds added before forwarding.
    ``duplicate``: forward a share of requests twice, as an at-least-once sender
    redelivering after a lost acknowledgement does (the first answer is returned)."""

    down: bool = False
    rate_limit: float = 0.0
    retry_after: int = 1
    latency: float = 0.0
    duplicate: float = 0.0
    #: Automatically clear every fault at this monotonic time (None: never).
    until: float | None = None


class FaultProxy:
    """Forwards every request to ``upstream`` unless a fault says otherwise."""

    def __init__(self, upstream: str, *, name: str = "upstream", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.name = name
        self._faults = Faults()
        self._lock = threading.Lock()
        self._counter = 0
        self.stats: dict[str, int] = {"forwarded": 0, "down": 0, "rate_limited": 0, "duplicated": 0}
        self._client: httpx.AsyncClient | None = None
        app = Starlette(
            routes=[
                Route("/_faults", self._control, methods=["GET", "POST", "DELETE"]),
                Route(
                    "/{path:path}",
                    self._forward,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                ),
            ]
        )
        self._server = ThreadedServer(app, port=port)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def faults(self) -> Faults:
        with self._lock:
            if self._faults.until is not None and time.monotonic() >= self._faults.until:
                self._faults = Faults()
            return self._faults

    def set(self, duration: float | None = None, **faults: Any) -> None:
        """Put faults in force (``set(down=True, duration=30)``); unnamed ones clear."""
        until = time.monotonic() + duration if duration else None
        with self._lock:
            self._faults = replace(Faults(), until=until, **faults)

    def clear(self) -> None:
        with self._lock:
            self._faults = Faults()

    def start(self) -> FaultProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    async def _control(self, request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            duration = body.pop("duration", None)
            try:
                self.set(duration=duration, **body)
            except TypeError as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
        elif request.method == "DELETE":
            self.clear()
        return JSONResponse({"faults": asdict(self.faults), "stats": self.stats})

    async def _forward(self, request: Request) -> Response:
        faults = self.faults
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if faults.down:
            self.stats["down"] += 1
            return JSONResponse({"error": f"{self.name} unavailable"}, status_code=503)
        if faults.rate_limit > 0:
            self._counter += 1
            if _share(self._counter, faults.rate_limit):
                self.stats["rate_limited"] += 1
                return JSONResponse(
                    {"error": {"type": "rate_limit_error", "message": "Too many requests"}},
                    status_code=429,
                    headers={"Retry-After": str(faults.retry_after)},
                )
        if self._client is None:
            # Created lazily inside the server's own event loop.
            self._client = httpx.AsyncClient(timeout=60.0)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = f"{self.upstream}{request.url.path}"
        if request.url.query:
            url += f"?{request.url.query}"
        body = await request.body()
        try:
            upstream = await self._client.request(
                request.method, url, headers=headers, content=body
            )
            if faults.duplicate > 0:
                self._counter += 1
                if _share(self._counter, faults.duplicate):
                    await self._client.request(request.method, url, headers=headers, content=body)
                    self.stats["duplicated"] += 1
        except httpx.HTTPError as exc:
            return JSONResponse({"error": f"{self.name} unreachable: {exc}"}, status_code=502)
        self.stats["forwarded"] += 1
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=out_headers)


def _share(counter: int, share: float) -> bool:
    """Whether request number ``counter`` falls in ``share`` (0..1), evenly spread."""
    return share >= 1 or (counter * share) % 1 < share
