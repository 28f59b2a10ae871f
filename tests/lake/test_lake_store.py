"""The lake's write path: a batch and its offsets in one DuckLake transaction."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from _events import make_event

from collector._columns import EnvelopeColumns, batch_table
from collector.lake import LakeFenced, LakeSettings, LakeStore, PartitionOffset
from tracing import ConfigError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEMA = EnvelopeColumns().table(NOW)[0].schema


def rows(first: int, n: int) -> pa.Table:
    return batch_table([make_event(i) for i in range(first, first + n)], NOW)


def count(store: LakeStore) -> int:
    return int(store.query("SELECT count(*) FROM lake.events")[0][0])


@pytest.fixture(params=["local", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> LakeSettings:
    if request.param == "local":
        return LakeSettings(tmp_path / "lake")
    return LakeSettings(tmp_path / "lake", request.getfixturevalue("catalog"))


def test_batch_and_offsets_commit_together(settings: LakeSettings) -> None:
    with LakeStore(settings, SCHEMA) as store:
        assert store.offsets("g", "t", [0, 1]) == {0: 0, 1: 0}
        store.commit_batch(
            "g", "t", rows(0, 10), {0: PartitionOffset(0, 6), 1: PartitionOffset(0, 4)}
        )
        store.commit_batch("g", "t", rows(10, 5), {0: PartitionOffset(6, 11)})
        assert store.offsets("g", "t", [0, 1, 2]) == {0: 11, 1: 4, 2: 0}
        assert count(store) == 15
    # Reopened (a restarted collector), the lake still says where to resume.
    with LakeStore(settings, SCHEMA) as store:
        assert store.offsets("g", "t", [0, 1]) == {0: 11, 1: 4}
        assert count(store) == 15


def test_stale_start_is_fenced_and_stores_nothing(settings: LakeSettings) -> None:
    with LakeStore(settings, SCHEMA) as store:
        store.commit_batch("g", "t", rows(0, 10), {0: PartitionOffset(0, 10)})
        # A zombie still believes partition 0 starts at 0: its batch is refused whole,
        # including its rows for partition 1, whose offset it had right.
        with pytest.raises(LakeFenced):
            store.commit_batch(
                "g", "t", rows(0, 12), {0: PartitionOffset(0, 10), 1: PartitionOffset(0, 2)}
            )
        assert count(store) == 10
        assert store.offsets("g", "t", [0, 1]) == {0: 10, 1: 0}


def test_overlapping_writers_of_one_partition_conflict(catalog: str, tmp_path: Path) -> None:
    # Two processes' connections (one each), both starting from offset 0 of
    # partition 0 inside open transactions: only the first commit wins.
    settings = LakeSettings(tmp_path / "lake", catalog)
    with LakeStore(settings, SCHEMA) as a, LakeStore(settings, SCHEMA) as b:
        a.offsets("g", "t", [0])
        b.offsets("g", "t", [0])
        b.conn.execute("BEGIN")
        b.conn.execute("SELECT count(*) FROM lake.events").fetchall()  # b's snapshot
        a.commit_batch("g", "t", rows(0, 5), {0: PartitionOffset(0, 5)})
        # b's snapshot still sees offset 0, so its update matches; the commit must fail.
        b.conn.execute("ROLLBACK")
        with pytest.raises(LakeFenced):
            b.commit_batch("g", "t", rows(100, 5), {0: PartitionOffset(0, 5)})
        assert count(a) == 5


def test_writers_of_different_partitions_do_not_fence_each_other(
    catalog: str, tmp_path: Path
) -> None:
    settings = LakeSettings(tmp_path / "lake", catalog)
    with LakeStore(settings, SCHEMA) as a, LakeStore(settings, SCHEMA) as b:
        for k in range(5):
            a.commit_batch("g", "t", rows(k * 10, 10), {0: PartitionOffset(k * 10, k * 10 + 10)})
            b.commit_batch(
                "g", "t", rows(1000 + k * 10, 10), {1: PartitionOffset(k * 10, k * 10 + 10)}
            )
        assert count(a) == 100
        assert a.offsets("g", "t", [0, 1]) == {0: 50, 1: 50}


def test_data_files_are_fsynced_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    with LakeStore(LakeSettings(tmp_path / "lake"), SCHEMA) as store:
        monkeypatch.setattr(os, "fsync", spy)
        store.commit_batch("g", "t", rows(0, 10), {0: PartitionOffset(0, 10)})
        named = {
            Path(r[0]).name
            for r in store.query("SELECT data_file FROM ducklake_list_files('lake', 'events')")
        }
    assert named and named <= {Path(p).name for p in synced}


def test_catalog_setting_must_be_postgres(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lineage\.catalog"):
        LakeSettings(tmp_path, "mysql:host=x")


def test_the_catalog_comes_from_the_environment(tmp_path: Path) -> None:
    from collector._config import load_settings

    url = "postgres:dbname=lake host=10.0.0.5 user=interlock"
    lineage = load_settings(env={"INTERLOCK_LINEAGE_CATALOG": url}).lineage
    assert LakeSettings(Path(lineage.lake_path), lineage.catalog).catalog_url == f"ducklake:{url}"
    with pytest.raises(ConfigError, match=r"lineage\.catalog"):
        load_settings(env={"INTERLOCK_LINEAGE_CATALOG": "sqlite:lake.db"})
