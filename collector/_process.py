"""Start and stop the landscape's servers as child processes on 127.0.0.1.

Every server gets a free port, is waited for until it answers, and is stopped
(SIGTERM, then SIGKILL) by ``stop()``, which is safe to call twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

__all__ = ["ManagedProcess", "ManagedServer", "free_port", "wait_for_http"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str,
    *,
    timeout: float = 30.0,
    verify: bool | str = True,
    alive: Callable[[], bool] | None = None,
    ok: Callable[[httpx.Response], bool] | None = None,
) -> None:
    """Poll ``url`` until it answers (any status below 500 by default)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    # httpx wants an SSL context, not a CA path.
    tls: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    )
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the server behind {url} exited before it was ready")
        try:
            response = httpx.get(url, timeout=2.0, verify=tls)
            if (ok or (lambda r: r.status_code < 500))(response):
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s (last error: {last})")


class ManagedProcess:
    """One child server process; a context manager.

    ``ready_url`` is polled after start; output goes to ``log_path`` (or is
    discarded) so a chatty server cannot block on a full pipe.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready_url: str | None = None,
        ready_timeout: float = 60.0,
        verify: bool | str = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready_url = ready_url
        self.ready_timeout = ready_timeout
        self.verify = verify
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def python_module(cls, name: str, module: str, *args: str, **kwargs: object) -> ManagedProcess:
        """A server run as ``python -m module args`` with this interpreter."""
        return cls(name, [sys.executable, "-m", module, *args], **kwargs)  # type: ignore[arg-type]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ManagedProcess:
        if self._proc is not None:
            return self
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it
        )
        if self.log_path:
            out.close()  # type: ignore[union-attr]
        if self.ready_url:
            try:
                wait_for_http(
                    self.ready_url, timeout=self.ready_timeout, verify=self.verify, alive=self.alive
                )
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ManagedServer:
    """Base of the launchers: one :class:`ManagedProcess` behind ``start``/``stop``.

    A context manager. Subclasses build and start the process in :meth:`_launch`
    and may wait for more than an HTTP answer in :meth:`_wait_ready`. ``start()``
    is a no-op while a process is held; ``stop()`` is safe to call twice and
    removes the work folder if :meth:`_workdir_or_temp` made it. A failed start
    stops what it started. ``repr`` shows only ``url``, never credentials.
    """

    #: Seconds ``stop()`` gives the child after SIGTERM before SIGKILL.
    stop_timeout = 10.0
    url: str

    def __init__(self) -> None:
        self._process: ManagedProcess | None = None
        self._owned_workdir: Path | None = None

    def _workdir_or_temp(self, workdir: Path | None, prefix: str) -> Path:
        """``workdir``, or a fresh temporary folder that ``stop()`` removes."""
        if workdir is not None:
            return workdir
        self._owned_workdir = Path(tempfile.mkdtemp(prefix=prefix))
        return self._owned_workdir

    def _launch(self) -> ManagedProcess:
        """Build the child process, start it and return it."""
        raise NotImplementedError

    def _wait_ready(self) -> None:
        """Wait until the started server can serve; ``ManagedProcess`` did the rest."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    def start(self) -> Self:
        """Launch the server and wait until it is ready."""
        if self._process is not None:
            return self
        try:
            self._process = self._launch()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server; remove the work folder if this object created it."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(self.stop_timeout)
        if self._owned_workdir is not None:
            shutil.rmtree(self._owned_workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
