"""Lake fixtures: one private PostgreSQL cluster per test session, a database per test."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sandbox.postgres import PostgresCluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    # Not under pytest's tmp_path: its parents are private to root, and the
    # cluster runs as the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="interlock-pg-"))
    folder.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
    try:
        with PostgresCluster(folder / "cluster") as cluster:
            yield cluster
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def catalog(postgres: PostgresCluster) -> str:
    """A fresh PostgreSQL catalog database for one test."""
    name = f"lake_{uuid.uuid4().hex[:12]}"
    postgres.createdb(name)
    return postgres.catalog(name)
