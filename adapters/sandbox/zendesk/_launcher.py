"""Run the Zendesk sandbox as a child process and tell tests how to reach it."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from .._process import ManagedProcess, free_port

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


class ZendeskSandbox:
    """The sandbox in a child process: ``python -m adapters.sandbox.zendesk``.

    A context manager; ``start()`` waits until it answers, ``stop()`` is safe
    to call twice.

    Example::

        with ZendeskSandbox() as zd:
            httpx.get(f"{zd.url}/api/v2/tickets.json", auth=(f"{zd.email}/token", zd.api_token))
    """

    def __init__(self, *, workdir: Path | None = None, port: int | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="zd-sandbox-"))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        account = load_or_create_account(self.workdir)
        self.email = account["email"]
        self.api_token = account["api_token"]
        self._process: ManagedProcess | None = None

    def __repr__(self) -> str:  # never shows the token
        return f"ZendeskSandbox(url={self.url!r})"

    def start(self) -> ZendeskSandbox:
        if self._process is not None:
            return self
        self._process = ManagedProcess.python_module(
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
        )
        self._process.start()
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ZendeskSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
