"""Errors become HTTP answers in one place: every 429 and 503 says when to retry."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from collector.api import PROBLEM_JSON, install_problem_handlers
from tracing import BusError, DownstreamUnavailable, RateLimited


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/limited")
    def limited() -> None:
        raise RateLimited("replays are rate limited", retry_after=12.3)

    @app.get("/down")
    def down() -> None:
        raise DownstreamUnavailable("the ERP is down")

    @app.get("/bus")
    def bus() -> None:
        raise BusError("kafka: broker transport failure 0xdead")

    @app.get("/plain-503")
    def plain() -> None:
        raise HTTPException(503, "not ready")

    return app


def test_every_429_and_503_carries_retry_after_and_a_problem_body() -> None:
    with TestClient(_app()) as client:
        # A system that rate-limits us makes us unavailable: 503, with its own wait.
        limited = client.get("/limited")
        assert limited.status_code == 503
        assert limited.headers["retry-after"] == "13"  # rounded up
        for path in ("/down", "/bus", "/plain-503"):
            answer = client.get(path)
            assert answer.status_code == 503, path
            assert answer.headers["retry-after"] == "5", path
            assert answer.headers["content-type"].startswith(PROBLEM_JSON), path
            assert answer.json()["status"] == 503 and answer.json()["detail"], path
        # The engine's own text stays in the log.
        assert "0xdead" not in client.get("/bus").text
