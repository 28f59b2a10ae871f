"""Run the ServiceNow sandbox as a child process and tell tests how to reach it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from collector.process import ManagedProcess, ManagedServer, free_port

from ..salesforce._tls import ensure_certificate

__all__ = ["ServiceNowSandbox", "load_or_create_credentials"]

_ROOT = Path(__file__).resolve().parents[3]


def load_or_create_credentials(workdir: Path) -> dict[str, str]:
    """The sandbox's user and OAuth client in ``workdir`` (mode 0600), created on first use."""
    path = workdir / "credentials.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data = {
        "username": "interlock.integration",
        "password": secrets.token_urlsafe(16),
        "client_id": secrets.token_hex(16),
        "client_secret": secrets.token_urlsafe(24),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(data))
    return data


class ServiceNowSandbox(ManagedServer):
    """The sandbox in a child process: ``python -m adapters.sandbox.servicenow``.

    A context manager; ``start()`` waits until it answers over TLS, ``stop()`` is
    safe to call twice. ``ca_file`` is the self-signed certificate to trust.

    Example::

        with ServiceNowSandbox() as sn:
            httpx.get(f"{sn.url}/api/now/table/incident", auth=(sn.username, sn.password),
                      verify=sn.ca_file)
    """

    def __init__(self, *, workdir: Path | None = None, port: int | None = None) -> None:
        super().__init__()
        self.workdir = self._workdir_or_temp(workdir, "sn-sandbox-")
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_file = str(self.workdir / "cert.pem")
        creds = load_or_create_credentials(self.workdir)
        self.username = creds["username"]
        self.password = creds["password"]
        self.client_id = creds["client_id"]
        self.client_secret = creds["client_secret"]

    def _launch(self) -> ManagedProcess:
        ensure_certificate(self.workdir / "cert.pem", self.workdir / "key.pem")
        return ManagedProcess.python_module(
            "servicenow-sandbox",
            "adapters.sandbox.servicenow",
            "--port",
            str(self.port),
            "--workdir",
            str(self.workdir),
            ready_url=f"{self.url}/_sandbox/stats",
            ready_timeout=30.0,
            verify=self.ca_file,
            cwd=_ROOT,
            log_path=self.workdir / "server.log",
        ).start()
