"""Run the Zendesk sandbox as a child process and tell tests how to reach it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from collector.process import ManagedProcess, ManagedServer, free_port

__all__ = ["ZendeskSandbox", "load_or_create_account"]

_ROOT = Path(__file__).resolve().parents[3]


def load_or_create_account(workdir: Path) -> dict[str, str]:
    """The sandbox's agent credentials in ``workdir`` (mode 0600), created on first use."""
    path = workdir / "account.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data = {"email": "integration@interlock.example", "api_token": secrets.token_urlsafe(30)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(data))
    return data


class ZendeskSandbox(ManagedServer):
    """The sandbox in a child process: ``python -m adapters.sandbox.zendesk``.

    A context manager; ``start()`` waits until it answers, ``stop()`` is safe
    to call twice.

    Example::

        with ZendeskSandbox() as zd:
            httpx.get(f"{zd.url}/api/v2/tickets.json", auth=(f"{zd.email}/token", zd.api_token))
    """

    def __init__(self, *, workdir: Path | None = None, port: int | None = None) -> None:
        super().__init__()
        self.workdir = self._workdir_or_temp(workdir, "zd-sandbox-")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        account = load_or_create_account(self.workdir)
        self.email = account["email"]
        self.api_token = account["api_token"]

    def _launch(self) -> ManagedProcess:
        return ManagedProcess.python_module(
            "zendesk-sandbox",
            "adapters.sandbox.zendesk",
            "--port",
            str(self.port),
            "--workdir",
            str(self.workdir),
            ready_url=f"{self.url}/_sandbox/stats",
            ready_timeout=30.0,
            cwd=_ROOT,
            log_path=self.workdir / "server.log",
        ).start()
