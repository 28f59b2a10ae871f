"""``interlock tokens create|list|revoke``: run as a real process against a token store
file, and the tokens it makes checked against the control API that the runtime builds."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from collector import Role, TokenFile, load_tokens
from collector.api import Metrics, create_app
from collector.lineage import AsyncLineage, LineageStore

_CLI = "from collector._cli import main; raise SystemExit(main())"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def lineage() -> AsyncIterator[AsyncLineage]:
    lin = AsyncLineage(LineageStore())
    await lin.open()
    yield lin
    await lin.close()


async def _stats_status(app: object, token: str) -> int:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as c:
        return (await c.get("/api/v1/stats")).status_code


async def test_created_token_authenticates_and_a_revoked_one_is_refused(
    tmp_path: Path, lineage: AsyncLineage
) -> None:
    path = tmp_path / "tokens.json"
    made = run_cli(
        "tokens", "create", "--role", "operator", "--name", "oncall", "--file", str(path)
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert len(token) >= 32
    other = run_cli("tokens", "create", "--role", "viewer", "--name", "wall", "--file", str(path))
    assert other.returncode == 0, other.stderr

    # Only hashes are stored, in a file only its owner can read.
    text = path.read_text()
    assert token not in text and other.stdout.strip() not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {e["name"] for e in json.loads(text)["tokens"]} == {"oncall", "wall"}

    # The runtime's store reads the file: the token works against the control API.
    store = load_tokens([], env={}, file=path)
    app = create_app(lineage=lineage, metrics=Metrics(CollectorRegistry()), tokens=store)
    assert await _stats_status(app, token) == 200

    listed = run_cli("tokens", "list", "--file", str(path))
    assert listed.returncode == 0, listed.stderr
    assert "oncall" in listed.stdout and "operator" in listed.stdout and "wall" in listed.stdout
    assert token not in listed.stdout and "sha256" not in listed.stdout

    revoked = run_cli("tokens", "revoke", "oncall", "--file", str(path))
    assert revoked.returncode == 0, revoked.stderr
    # The running app sees the revocation from the next request on, no restart needed.
    assert await _stats_status(app, token) == 401
    assert await _stats_status(app, other.stdout.strip()) == 200
    # A fresh store built from the file refuses it as well.
    fresh = create_app(
        lineage=lineage, metrics=Metrics(CollectorRegistry()), tokens=load_tokens(file=path)
    )
    assert await _stats_status(fresh, token) == 401
    assert "oncall" not in run_cli("tokens", "list", "--file", str(path)).stdout


def test_bad_requests_get_a_named_outcome(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    bad_role = run_cli("tokens", "create", "--role", "king", "--name", "x", "--file", str(path))
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr
    assert not path.exists()
    assert (
        run_cli(
            "tokens", "create", "--role", "admin", "--name", "x", "--file", str(path)
        ).returncode
        == 0
    )
    twice = run_cli("tokens", "create", "--role", "admin", "--name", "x", "--file", str(path))
    assert twice.returncode == 2 and "exists" in twice.stderr
    missing = run_cli("tokens", "revoke", "nobody", "--file", str(path))
    assert missing.returncode == 1 and "no token named" in missing.stderr


def test_the_default_file_comes_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "tokens.json"
    monkeypatch.setenv("INTERLOCK_API_TOKENS_FILE", str(path))
    made = run_cli("tokens", "create", "--role", "approver", "--name", "anna")
    assert made.returncode == 0, made.stderr
    assert [e.name for e in TokenFile(path).entries()] == ["anna"]


def test_a_file_broken_later_keeps_the_last_good_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = TokenFile(path).create("ops", Role.OPERATOR)
    store = load_tokens(file=path)
    path.write_text("{not json")
    principal = store.authenticate(token)
    assert principal is not None and principal.name == "ops"
