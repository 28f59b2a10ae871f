"""A real Tryton ERP on SQLite: a cached template database and a server launcher.

``build_template()`` builds, once per trytond version and calendar year, a
database with Interlock's demo company, chart of accounts, fiscal years, the
``NET30`` payment term and the price book's service products. It is cached under
``$INTERLOCK_CACHE_DIR/tryton/`` (default ``~/.cache/interlock/tryton/``) and built
in a temporary folder that is renamed into place, so two processes racing to
build it never see a half-built one.

``TrytonServer`` copies that template into a fresh work folder and runs
``trytond`` on it as a child process bound to 127.0.0.1::

    with TrytonServer() as erp:
        adapter = TrytonAdapter(erp.url, erp.database, erp.user, erp.password)

``python -m adapters.sandbox.tryton --port 8000 --workdir /tmp/erp`` runs one in
the foreground until interrupted; the admin password is then in
``/tmp/erp/admin.password`` (mode 0600), never on the console.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from collector.process import ManagedProcess, ManagedServer, free_port

__all__ = ["DATABASE", "USER", "TrytonServer", "build_template", "cache_root"]

DATABASE = "erp"
USER = "admin"
_TEMPLATE_FILE = f"{DATABASE}.sqlite"
_LOGIN_FILE = "admin.password"
#: The modules the template activates (with their dependencies).
_MODULES = (
    "sale",
    "sale_credit_limit",
    "account_invoice",
    "account_statement",
    "account_statement_mt940",
    "account_statement_sepa",
    "product_price_list_dates",
    "sale_price_list",
    "party_relationship",
)
_BIN = Path(sys.executable).parent
# trytond computes dates in the server's zone; UTC keeps tests independent of the host.
_ENV = {"TZ": "UTC"}


def cache_root() -> Path:
    """Where templates live: ``$INTERLOCK_CACHE_DIR/tryton`` or ``~/.cache/interlock/tryton``."""
    base = os.environ.get("INTERLOCK_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "interlock"
    return root / "tryton"


def _template_key() -> str:
    import trytond

    # The set-up's own revision too: a template built before a module or a record was
    # added must not be reused.
    setup = hashlib.sha256()
    setup.update(" ".join(_MODULES).encode())
    setup.update((Path(__file__).parent / "_tryton_setup.py").read_bytes())
    # The catalog's tax configuration names the taxes the set-up creates.
    setup.update((Path(__file__).parents[1] / "catalog" / "_checks.py").read_bytes())
    revision = setup.hexdigest()[:10]
    return f"trytond-{trytond.__version__}-{datetime.date.today().year}-{revision}"


def _write_config(directory: Path, data_path: Path, port: int | None = None) -> Path:
    lines = ["[database]", "uri = sqlite://", f"path = {data_path}", ""]
    if port is not None:
        lines += ["[web]", f"listen = 127.0.0.1:{port}", ""]
    # One session per login is plenty; a long idle timeout keeps slow tests logged in.
    lines += ["[session]", "timeout = 3600", ""]
    conf = directory / "trytond.conf"
    conf.write_text("\n".join(lines))
    return conf


def _run(argv: list[str], *, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(argv[:2])} failed ({result.returncode}):\n{tail}")


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, from the first byte on."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _compact(database: Path) -> None:
    """Fold the write-ahead log into the file so a plain copy is complete."""
    con = sqlite3.connect(database)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
    finally:
        con.close()
    for suffix in ("-wal", "-shm", "-journal"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def build_template(cache_dir: Path | None = None) -> Path:
    """The template database file, built first if it is not cached yet.

    Returns the path of ``erp.sqlite``; the admin password sits beside it in
    ``admin.password`` (mode 0600). Safe to call from several processes at once.
    """
    root = cache_dir if cache_dir is not None else cache_root()
    final = root / _template_key()
    if (final / _TEMPLATE_FILE).exists():
        return final / _TEMPLATE_FILE
    root.mkdir(parents=True, exist_ok=True)
    # The lock only saves a second build's CPU; correctness rests on the rename.
    with (root / f".{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / _TEMPLATE_FILE).exists():
            return final / _TEMPLATE_FILE
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        try:
            _build_into(work)
            try:
                os.rename(work, final)
            except OSError:
                # Another builder (without the lock, e.g. on NFS) finished first.
                if not (final / _TEMPLATE_FILE).exists():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final / _TEMPLATE_FILE


def _build_into(work: Path) -> None:
    database = work / _TEMPLATE_FILE
    database.touch()
    password = secrets.token_urlsafe(18)
    passfile = work / _LOGIN_FILE
    _write_secret(passfile, password)
    conf = _write_config(work, work)
    log = work / "build.log"
    env = {**os.environ, **_ENV, "TRYTONPASSFILE": str(passfile)}
    admin = [str(_BIN / "trytond-admin"), "-c", str(conf), "-d", DATABASE]
    _run([*admin, "--all", "--email", "admin@example.com"], env=env, log=log)
    _run([*admin, "-u", *_MODULES, "--activate-dependencies"], env=env, log=log)
    setup = [sys.executable, "-m", "adapters.sandbox._tryton_setup", str(conf), DATABASE]
    _run(setup, env={**env, "PYTHONPATH": _project_root()}, log=log)
    _compact(database)
    for leftover in (conf, log):
        leftover.unlink(missing_ok=True)


def _project_root() -> str:
    return str(Path(__file__).resolve().parents[2])


class TrytonServer(ManagedServer):
    """A trytond server on a copy of the template; a context manager.

    ``start()`` waits until a login succeeds; ``stop()`` is safe to call twice.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        workdir: Path | None = None,
        cache_dir: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.database = DATABASE
        self.user = USER
        self.password = ""
        # Absolute: the server runs with its workdir as the current directory.
        self.workdir = self._workdir_or_temp(workdir, "interlock-tryton-").resolve()
        self._cache_dir = cache_dir
        self._ready_timeout = ready_timeout

    def _launch(self) -> ManagedProcess:
        """Copy the template, write the config and start trytond."""
        template = build_template(self._cache_dir)
        self.password = (template.parent / _LOGIN_FILE).read_text().strip()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Beside the server too, so a demo that started it by workdir can log in.
        login = self.workdir / _LOGIN_FILE
        _write_secret(login, self.password)
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        target = data / _TEMPLATE_FILE
        # A leftover -wal/-shm beside a fresh copy would resurrect the old rows.
        for suffix in ("", "-wal", "-shm", "-journal"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        shutil.copyfile(template, target)
        conf = _write_config(self.workdir, data, self.port)
        return ManagedProcess(
            "tryton",
            # -d loads the pool at start: without it the first login fails (trytond 8.2).
            [str(_BIN / "trytond"), "-c", str(conf), "-d", DATABASE],
            env=_ENV,
            cwd=self.workdir,
            log_path=self.workdir / "trytond.log",
        ).start()

    def _wait_ready(self) -> None:
        """Wait until a login succeeds: trytond answers HTTP before its pool is loaded."""
        deadline = time.monotonic() + self._ready_timeout
        body = {
            "id": 0,
            "method": "common.db.login",
            "params": [self.user, {"password": self.password}, "en"],
        }
        last = "no answer"
        while time.monotonic() < deadline:
            if self._process is None or not self._process.alive():
                raise RuntimeError(f"trytond exited early; see {self.workdir / 'trytond.log'}")
            try:
                answer = httpx.post(f"{self.url}{self.database}/rpc/", json=body, timeout=5.0)
                if answer.status_code == 200 and isinstance(answer.json().get("result"), list):
                    return
                last = f"HTTP {answer.status_code}"
            except (httpx.HTTPError, ValueError) as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise TimeoutError(f"trytond at {self.url} not ready in {self._ready_timeout}s ({last})")


def main(argv: list[str] | None = None) -> int:
    """Run one Tryton server in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description="Run the Tryton ERP sandbox.")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with TrytonServer(port=args.port, workdir=args.workdir) as server:
        # The password is a throwaway sandbox credential; the demo needs to read it.
        print(f"tryton ready url={server.url} database={server.database}", flush=True)
        print(f"admin password file: {server.workdir / _LOGIN_FILE}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
