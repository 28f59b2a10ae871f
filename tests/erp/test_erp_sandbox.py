"""The Tryton sandbox: cached template and server launcher."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import httpx
import pytest

from adapters.sandbox.tryton import TrytonServer, build_template

pytestmark = pytest.mark.slow


def test_template_is_cached_and_complete(tryton_server: TrytonServer) -> None:
    started = time.perf_counter()
    template = build_template()
    assert time.perf_counter() - started < 1.0
    assert template.name == "erp.sqlite"
    assert template.stat().st_size > 1_000_000
    # A copy of the bare file must be the whole database: no write-ahead log beside it.
    assert not template.with_name("erp.sqlite-wal").exists()
    assert not template.with_name("erp.sqlite-shm").exists()
    secret = template.with_name("admin.password")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_server_attributes(tryton_server: TrytonServer) -> None:
    assert tryton_server.url == f"http://127.0.0.1:{tryton_server.port}/"
    assert (tryton_server.database, tryton_server.user) == ("erp", "admin")
    assert tryton_server.password


def test_fresh_copy_ignores_a_leftover_write_ahead_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "erp.sqlite-wal").write_bytes(b"stale rows from an earlier run")
    with TrytonServer(workdir=tmp_path) as server:
        answer = httpx.post(
            f"{server.url}erp/rpc/",
            json={
                "id": 1,
                "method": "common.db.login",
                "params": [server.user, {"password": server.password}, "en"],
            },
        )
        assert answer.json()["result"][0] == 1
        secret = tmp_path / "admin.password"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert tmp_path.exists()  # a given workdir is the caller's to remove
