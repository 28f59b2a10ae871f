"""Run the Salesforce sandbox as a child process and tell tests how to reach it."""

from __future__ import annotations

import json
import secrets
import ssl
from pathlib import Path

import httpx

from collector.process import ManagedProcess, ManagedServer, free_port

from ._tls import ensure_certificate, ensure_jwt_keypair

__all__ = ["SalesforceSandbox", "load_or_create_credentials"]

_ROOT = Path(__file__).resolve().parents[3]


def load_or_create_credentials(workdir: Path) -> dict[str, str]:
    """The sandbox's credentials file in ``workdir`` (mode 0600), created on first use."""
    path = workdir / "credentials.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data = {
        "client_id": "3MVG9sandbox" + secrets.token_hex(8),
        "client_secret": secrets.token_hex(32),
        "username": "integration@interlock.example",
        "password": secrets.token_urlsafe(16),
        "token": "00DWz0000000001!" + secrets.token_urlsafe(48),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(data))
    return data


class SalesforceSandbox(ManagedServer):
    """The sandbox in a child process: ``python -m adapters.sandbox.salesforce``.

    A context manager; ``start()`` waits until it answers over TLS and
    ``stop()`` is safe to call twice. ``page_size`` shrinks the query batch
    (Salesforce's is 2000) so paging is cheap to exercise.

    Example::

        with SalesforceSandbox() as sf:
            httpx.get(f"{sf.url}/services/data/v60.0/limits/",
                      headers={"Authorization": f"Bearer {sf.token}"}, verify=sf.ca_file)
    """

    def __init__(
        self, *, workdir: Path | None = None, port: int | None = None, page_size: int = 2000
    ) -> None:
        super().__init__()
        self.workdir = self._workdir_or_temp(workdir, "sf-sandbox-")
        self.port = port or free_port()
        self.page_size = page_size
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_file = str(self.workdir / "cert.pem")
        creds = load_or_create_credentials(self.workdir)
        self.client_id = creds["client_id"]
        self.client_secret = creds["client_secret"]
        self.username = creds["username"]
        self.password = creds["password"]
        self.token = creds["token"]
        #: The connected app's consumer key is its client ID; the private key signs
        #: JWT bearer assertions, the certificate beside it is what the org trusts.
        self.consumer_key = self.client_id
        self.jwt_key_file = str(self.workdir / "jwt_key.pem")
        self.jwt_cert_file = str(self.workdir / "jwt_cert.pem")
        ensure_jwt_keypair(Path(self.jwt_key_file), Path(self.jwt_cert_file))

    def control(self, path: str, body: dict[str, object]) -> object:
        """``POST /_sandbox/<path>`` with ``body`` (faults, clock, sessions); its answer."""
        answer = httpx.post(
            f"{self.url}/_sandbox/{path}",
            json=body,
            verify=ssl.create_default_context(cafile=self.ca_file),
        )
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, object]:
        """``GET /_sandbox/stats``: record counts, faults, token requests by grant type."""
        answer = httpx.get(
            f"{self.url}/_sandbox/stats", verify=ssl.create_default_context(cafile=self.ca_file)
        )
        answer.raise_for_status()
        data: dict[str, object] = answer.json()
        return data

    def _launch(self) -> ManagedProcess:
        ensure_certificate(self.workdir / "cert.pem", self.workdir / "key.pem")
        return ManagedProcess.python_module(
            "salesforce-sandbox",
            "adapters.sandbox.salesforce",
            "--port",
            str(self.port),
            "--workdir",
            str(self.workdir),
            "--page-size",
            str(self.page_size),
            ready_url=f"{self.url}/_sandbox/stats",
            ready_timeout=30.0,
            verify=self.ca_file,
            cwd=_ROOT,
            log_path=self.workdir / "server.log",
        ).start()
