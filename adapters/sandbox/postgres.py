"""A private PostgreSQL cluster for tests and benchmarks: the DuckLake catalog.

Debian's PostgreSQL binaries (``/usr/lib/postgresql/<major>/bin``; ``make test``
installs the ``postgresql`` package where it is missing) initialise a cluster in
a temporary folder, bind 127.0.0.1 on a free port with its socket in that folder,
and are stopped on exit. PostgreSQL refuses to run as root, so as root the
cluster runs as the ``postgres`` user. Trust authentication: it listens only on
the loopback and lives only as long as the test session.

>>> with PostgresCluster(tmp) as pg:  # doctest: +SKIP
...     print(pg.catalog("lake"))
postgres:dbname=lake host=127.0.0.1 port=40123 user=postgres
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Self

from collector.process import free_port

__all__ = ["PostgresCluster", "postgres_bin"]


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL ``bin`` folder; ``FileNotFoundError`` if none."""
    root = Path("/usr/lib/postgresql")
    majors = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not majors:
        raise FileNotFoundError("no PostgreSQL under /usr/lib/postgresql (apt install postgresql)")
    return majors[-1]


class PostgresCluster:
    """``start``/``stop`` (safe twice), ``restart``, ``createdb`` and ``catalog``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.bin = postgres_bin()
        self.port = 0
        self._running = False
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def start(self) -> None:
        if self._running:
            return
        if not self.data.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            if self._as:
                shutil.chown(self.folder, "postgres", "postgres")
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "-A", "trust", "--no-sync",
            )  # fmt: skip
        self.port = self.port or free_port()
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.folder / "pg.log"),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
            "start",
        )  # fmt: skip
        self._running = True

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    def restart(self) -> None:
        """Stop and start again on the same port (clients see their connections drop)."""
        self.stop()
        self.start()

    def createdb(self, name: str) -> None:
        self._run(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", name,
        )  # fmt: skip

    def catalog(self, database: str) -> str:
        """The DuckLake catalog setting (``[lineage] catalog``) for ``database``."""
        return f"postgres:dbname={database} host=127.0.0.1 port={self.port} user=postgres"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
