"""Run the Salesforce sandbox as a child process and tell tests how to reach it."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from .._process import ManagedProcess, free_port
from ._tls import ensure_certificate

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


class SalesforceSandbox:
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
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="sf-sandbox-"))
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
        self._process: ManagedProcess | None = None

    def __repr__(self) -> str:  # never shows the secrets
        return f"SalesforceSandbox(url={self.url!r})"

    def start(self) -> SalesforceSandbox:
        if self._process is not None:
            return self
        ensure_certificate(self.workdir / "cert.pem", self.workdir / "key.pem")
        self._process = ManagedProcess.python_module(
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
        )
        self._process.start()
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SalesforceSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
