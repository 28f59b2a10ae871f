"""Token configuration, and the ``interlock audit verify`` / ``tokens hash`` commands
run as real processes against a real control API."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from replay_server import ReplayApiServer
from replay_support import OPERATOR, failed_order

from collector import Role, hash_token, load_tokens
from replay import Selection
from tracing import ConfigError

_CLI = "from collector._cli import main; raise SystemExit(main())"


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tokens_from_the_file_section_and_the_environment() -> None:
    store = load_tokens(
        [{"name": "anna", "role": "approver", "token_hash": hash_token("a-secret")}],
        env={"INTERLOCK_TOKENS": f"olga:operator:{hash_token('o-secret')}, ada:admin:plain-one"},
    )
    assert len(store) == 3
    assert store.authenticate("a-secret").role is Role.APPROVER  # type: ignore[union-attr]
    assert store.authenticate("o-secret").name == "olga"  # type: ignore[union-attr]
    assert store.authenticate("plain-one").role is Role.ADMIN  # type: ignore[union-attr]
    assert store.authenticate("nope") is None


@pytest.mark.parametrize(
    ("entries", "env", "setting"),
    [
        ([{"name": "x", "role": "operator"}], {}, "tokens[0]"),
        ([{"name": "x", "role": "operator", "token_hash": "abc"}], {}, "tokens"),
        ([{"name": "x", "role": "boss", "token_hash": hash_token("t")}], {}, "tokens"),
        (
            [{"name": "x", "role": "viewer", "token_hash": hash_token("t"), "token": "t"}],
            {},
            "tokens[0]",
        ),
        ([], {"INTERLOCK_TOKENS": "just-a-token"}, "INTERLOCK_TOKENS[0]"),
        ([], {"INTERLOCK_TOKENS": "x:king:tok"}, "INTERLOCK_TOKENS[0]"),
        ([], {"INTERLOCK_TOKENS": "x:viewer:sha256:short"}, "INTERLOCK_TOKENS[0]"),
    ],
)
def test_bad_token_configuration_names_the_setting(entries, env, setting) -> None:
    with pytest.raises(ConfigError) as caught:
        load_tokens(entries, env=env)
    assert caught.value.setting == setting


def test_tokens_hash_prints_the_stored_form() -> None:
    done = run_cli("tokens", "hash", stdin="s3cret\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hash_token("s3cret")
    assert "s3cret" not in done.stdout


@pytest.fixture
def server() -> Iterator[ReplayApiServer]:
    pairs = [failed_order() for _ in range(2)]
    api = ReplayApiServer().start([event for pair in pairs for event in pair])

    async def act(service):  # a few audited actions
        await service.ignore(pairs[0][1].event_id, OPERATOR, reason="test deal")
        await service.request(Selection(event_id=pairs[1][1].event_id), OPERATOR, reason="retry")

    api.call(act)
    yield api
    api.stop()


def test_audit_verify_through_the_api(server: ReplayApiServer) -> None:
    intact = run_cli("audit", "verify", "--api", server.url, "--token", "tok-viewer")
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("audit trail intact: 2 entries, last 2, head 2")

    assert server.lineage is not None
    lineage = server.lineage

    async def tamper(_service):
        await lineage.write(
            lambda c: c.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
        )

    server.call(tamper)
    tampered = run_cli("audit", "verify", "--api", server.url, "--token", "tok-viewer")
    assert tampered.returncode == 1
    assert "TAMPERED" in tampered.stdout
    assert "problem: entry 1 was altered (its hash does not match)" in tampered.stdout

    refused = run_cli("audit", "verify", "--api", server.url, "--token", "forged")
    assert refused.returncode == 2 and "401" in refused.stderr


def test_audit_verify_says_when_the_api_is_down() -> None:
    from collector.process import free_port

    done = run_cli("audit", "verify", "--api", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert "cannot reach the control API" in done.stderr
