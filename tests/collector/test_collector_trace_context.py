"""The lineage keeps each event's W3C trace flags and tracestate (schema 4), and a
file written before them gains the columns on open with its rows intact."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from collector._kafka_codec import decode_columns
from collector.lineage import DDL, EVENT_COLUMNS, SCHEMA_VERSION, EnvelopeColumns, LineageStore
from tests.collector._collector_events import make_event
from tests.collector._old_schemas import SCHEMA_3_EVENTS

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
STATE = "congo=t61rcWkgMzE,t1@rojo=00f067aa0ba902b7"


def _traced(n: int, flags: int | None, state: str = STATE):
    return make_event("c-1", n=n, seconds=n).model_copy(
        update={"trace_id": TRACE, "trace_flags": flags, "tracestate": state}
    )


def _stored(store: LineageStore) -> list[tuple[object, ...]]:
    return store.read(
        lambda c: c.execute(
            "SELECT trace_id, trace_flags, tracestate FROM events ORDER BY event_id"
        ).fetchall()
    )


@pytest.mark.parametrize("path", ["exact", "columns"])
def test_flags_and_tracestate_are_stored_and_read_back(tmp_path: Path, path: str) -> None:
    store = LineageStore(tmp_path / "l.duckdb")
    store.open()
    events = [_traced(1, 0x00), _traced(2, 0x01), _traced(3, 0x03, ""), _traced(4, None, "")]
    if path == "exact":
        store.write_batch(events)
    else:
        columns = EnvelopeColumns()
        for e in events:
            assert columns.add_json(e.to_json()) is None  # the fast decoder took it
        store.write_columns(columns)
    assert _stored(store) == [
        (TRACE, 0, STATE),
        (TRACE, 1, STATE),
        (TRACE, 3, None),
        (TRACE, None, None),
    ]
    tx = store.get_transaction("c-1")
    assert tx is not None
    got = [(e["trace_flags"], e["tracestate"]) for e in tx["events"]]
    assert got == [(0, STATE), (1, STATE), (3, ""), (None, "")]
    store.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [("trace_flags", 256), ("trace_flags", -1), ("tracestate", "a=" + "x" * 600)],
)
def test_an_envelope_with_out_of_range_trace_context_is_rejected_with_a_reason(
    field: str, value: object
) -> None:
    body = make_event("c-1", n=1).model_dump(mode="json")
    body[field] = value
    columns, rejected = decode_columns([json.dumps(body).encode()], [[]])
    assert len(columns) == 0
    assert [r.message.split(":")[0] for r in rejected] == [field]


def _schema_3_file(tmp_path: Path) -> Path:
    path = tmp_path / "old.duckdb"
    seed = LineageStore(tmp_path / "seed.duckdb")
    seed.open()
    seed.write_batch([make_event("c-1", n=i, seconds=i) for i in range(1, 4)])
    seed.close()
    con = duckdb.connect(str(path))
    con.execute(SCHEMA_3_EVENTS)
    con.execute(DDL)
    con.execute("INSERT INTO schema_info VALUES (3)")
    old_columns = ", ".join(c for c in EVENT_COLUMNS if c not in ("trace_flags", "tracestate"))
    con.execute(f"ATTACH '{tmp_path / 'seed.duckdb'}' AS seed (READ_ONLY)")
    con.execute(f"INSERT INTO events ({old_columns}) SELECT {old_columns} FROM seed.events")
    con.execute("INSERT INTO transactions SELECT * FROM seed.transactions")
    con.close()
    return path


def test_a_schema_3_file_gains_the_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    store = LineageStore(_schema_3_file(tmp_path))
    store.open()
    version = store.read(lambda c: c.execute("SELECT max(version) FROM schema_info").fetchone())
    assert version == (SCHEMA_VERSION,) == (4,)
    assert [row[1:] for row in _stored(store)] == [(None, None)] * 3
    assert store.write_batch([_traced(9, 0x00)]).inserted == 1
    assert _stored(store)[-1] == (TRACE, 0, STATE)
    store.close()


def test_a_sibling_file_of_schema_3_is_absorbed_with_unknown_trace_context(tmp_path: Path) -> None:
    old = _schema_3_file(tmp_path)
    store = LineageStore(tmp_path / "survivor.duckdb")
    store.open()
    result = store.absorb(old)
    assert result is not None and result.inserted == 3
    assert [row[1:] for row in _stored(store)] == [(None, None)] * 3
    store.close()
