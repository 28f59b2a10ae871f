"""Schema governance: every published schema version is kept as a snapshot
(``tests/core/schemas/<name>.v<version>.json``), never changed in place, and each
new version keeps the readers of the previous one.

A deliberate new version: bump the object's ``schema_version`` (or the envelope's
``SCHEMA_VERSION``), run ``INTERLOCK_WRITE_SCHEMAS=1 pytest tests/core/test_schemas.py``
to write its snapshot, and commit it beside the change.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from adapters import CANONICAL_OBJECTS, CANONICAL_VERSION, SalesOrder
from collector import Role
from collector.kafka import decode_batch
from collector.lineage import EnvelopeColumns
from tests._hosts import serve
from tracing import (
    ENVELOPE_SCHEMA,
    ENVELOPE_UPCASTERS,
    SCHEMA_VERSION,
    Event,
    Schema,
    System,
    ValidationError,
    breaking_changes,
)

SNAPSHOTS = Path(__file__).parent / "schemas"
GOVERNED = [ENVELOPE_SCHEMA, *(Schema.of(model) for model in CANONICAL_OBJECTS)]


def _snapshot(name: str, version: int) -> Path:
    return SNAPSHOTS / f"{name}.v{version}.json"


@pytest.mark.parametrize("schema", GOVERNED, ids=lambda s: s.name)
def test_a_published_version_is_never_changed_in_place(schema: Schema) -> None:
    path = _snapshot(schema.name, schema.version)
    current = schema.json_schema()
    if not path.exists() and os.environ.get("INTERLOCK_WRITE_SCHEMAS"):
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert path.exists(), (
        f"{schema.name} v{schema.version} has no snapshot: a new version? write it with "
        "INTERLOCK_WRITE_SCHEMAS=1 (see this module's docstring)"
    )
    published = json.loads(path.read_text())
    # Compared by meaning (fields, types, required, enum values), not text: a new
    # pydantic may word a schema differently without changing what it admits.
    changed = breaking_changes(published, current) + [
        f"{problem.split(':')[0]}: not in the published snapshot"
        for problem in breaking_changes(current, published)
    ]
    assert changed == [], (
        f"{schema.name} v{schema.version} differs from its published snapshot: give the "
        f"change a new version instead of changing a published one: {changed}"
    )


@pytest.mark.parametrize("schema", [s for s in GOVERNED if s.version > 1], ids=lambda s: s.name)
def test_a_new_version_keeps_the_readers_of_the_previous_one(schema: Schema) -> None:
    previous = json.loads(_snapshot(schema.name, schema.version - 1).read_text())
    assert breaking_changes(previous, schema.json_schema()) == []
    assert schema.version - 1 in schema.upcasters, "a reader must read the previous version"


def test_the_canonical_objects_carry_the_canonical_version() -> None:
    assert {Schema.of(m).version for m in CANONICAL_OBJECTS} == {CANONICAL_VERSION}
    assert ENVELOPE_SCHEMA.version == SCHEMA_VERSION == 3
    assert ENVELOPE_SCHEMA.oldest == 1


# -- the check itself fails each kind of break --------------------------------------


class Tier(StrEnum):
    GOLD = "gold"
    SILVER = "silver"


class Tier2(StrEnum):
    GOLD = "gold"


class Address(BaseModel):
    city: str
    zip: str | None = None


class V1(BaseModel):
    account: str
    amount: int
    tier: Tier = Tier.GOLD
    note: str | None = None
    address: Address | None = None


class AddedOptional(V1):
    region: str | None = None


class Removed(BaseModel):
    account: str
    amount: int
    tier: Tier = Tier.GOLD
    address: Address | None = None


class Retyped(BaseModel):
    account: str
    amount: str
    tier: Tier = Tier.GOLD
    note: str | None = None
    address: Address | None = None


class NewlyRequired(V1):
    region: str


class EnumShrunk(BaseModel):
    account: str
    amount: int
    tier: Tier2 = Tier2.GOLD
    note: str | None = None
    address: Address | None = None


class Address2(BaseModel):
    city: int
    zip: str | None = None


class NestedRetyped(BaseModel):
    account: str
    amount: int
    tier: Tier = Tier.GOLD
    note: str | None = None
    address: Address2 | None = None


def _breaks(new: type[BaseModel]) -> list[str]:
    return breaking_changes(V1.model_json_schema(), new.model_json_schema())


def test_an_added_optional_field_is_compatible() -> None:
    assert _breaks(AddedOptional) == []


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (Removed, "note: removed"),
        (Retyped, "amount: no longer admits integer"),
        (NewlyRequired, "region: newly required"),
        (EnumShrunk, "tier: enum values removed: silver"),
        (NestedRetyped, "address.city: no longer admits string"),
    ],
    ids=["removed", "retyped", "required", "enum", "nested"],
)
def test_a_change_that_breaks_a_reader_of_the_previous_version_is_named(
    model: type[BaseModel], expected: str
) -> None:
    found = _breaks(model)
    assert any(problem.startswith(expected) for problem in found), found


# -- readers upcast the previous version ------------------------------------------------


def _v1_body(n: int) -> bytes:
    event = Event(
        event_id=f"e-{n}",
        correlation_id="c-1",
        idempotency_key=f"k-{n}",
        source=System.CRM,
        kind="opportunity.closed_won",
        step="crm.close",
        entity_type="opportunity",
        entity_id="006A",
        event_time=datetime(2026, 3, 1, tzinfo=UTC),
        recorded_at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    body: dict[str, Any] = json.loads(event.to_json())
    del body["trace_flags"], body["tracestate"]
    body["schema_version"] = 1
    return json.dumps(body).encode()


def test_every_reader_upcasts_a_version_1_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = ENVELOPE_UPCASTERS[1]

    def spy(document: dict[str, Any]) -> dict[str, Any]:
        seen.append(document["schema_version"])
        return original(document)

    monkeypatch.setitem(ENVELOPE_UPCASTERS, 1, spy)
    event = Event.from_json(_v1_body(1))
    assert (event.trace_flags, event.tracestate, event.schema_version) == (None, "", 1)
    columns = EnvelopeColumns()
    assert columns.add_json(_v1_body(2)) is not None  # the exact path, through the upcaster
    decoded = decode_batch([_v1_body(3)], [[]])
    assert [e.event_id for _, e in decoded.events] == ["e-3"]
    assert seen == [1, 1, 1]


def test_an_upcaster_can_reshape_an_old_document() -> None:
    def rename(document: dict[str, Any]) -> dict[str, Any]:
        out = dict(document)
        out["account"] = out.pop("account_id")
        return out

    schema = Schema("account", 2, V1, upcasters={1: rename})
    assert V1.model_validate(schema.upcast({"account_id": "a", "amount": 1}, 1)).account == "a"
    with pytest.raises(ValidationError, match="newer than this reader's 2"):
        schema.upcast({}, 3)
    with pytest.raises(ValidationError, match="older than this reader reads"):
        Schema("account", 3, V1, upcasters={2: rename}).upcast({}, 1)


# -- the control API publishes them --------------------------------------------------


def test_the_control_api_publishes_every_schema(tmp_path: Path) -> None:
    api = serve([], {"v-token": ("viewer", Role.VIEWER)}, workdir=tmp_path, sla=False)
    try:
        auth = {"Authorization": "Bearer v-token"}
        listing = httpx.get(f"{api.url}/api/v1/schemas", headers=auth)
        assert listing.status_code == 200, listing.text
        by_name = {s["name"]: s for s in listing.json()["schemas"]}
        assert by_name["envelope"]["version"] == 3
        assert by_name["envelope"]["oldest_readable"] == 1
        assert by_name["SalesOrder"]["kind"] == "canonical"
        one = httpx.get(f"{api.url}{by_name['SalesOrder']['url']}", headers=auth).json()
        assert one == Schema.of(SalesOrder).json_schema()
        assert one["x-version"] == CANONICAL_VERSION
        missing = httpx.get(f"{api.url}/api/v1/schemas/Nope", headers=auth)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no schema 'Nope'"
    finally:
        api.stop()
