"""Schema governance: versioned schemas, published as JSON Schema, checked for
compatibility, and upcast from their previous version.

Every document Interlock exchanges has a schema with a version: the event envelope
(``tracing.SCHEMA_VERSION``) and the canonical business objects the flows carry
(``adapters.CANONICAL_VERSION``). A :class:`Schema` names one, with the upcasters
that turn a document of an older version into the current shape. The control API
publishes them (``GET /api/v1/schemas``); the tests keep a snapshot of every
published version and fail a change that

- alters a published version in place (it must get a new version), or
- would break a reader of the previous version (:func:`breaking_changes`): a field
  removed, its type changed, a field made required, an enum value removed.

A reader of the current version reads the previous one through :meth:`Schema.upcast`.

>>> ENVELOPE_SCHEMA.upcast({"schema_version": 1, "kind": "a.b"}, 1)["tracestate"]
''
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ._envelope import ENVELOPE_UPCASTERS, SCHEMA_VERSION, Event
from ._errors import ConfigError, ValidationError

__all__ = ["ENVELOPE_SCHEMA", "Schema", "breaking_changes"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Schema:
    """One published schema: its name, current version, model and upcasters.

    ``upcasters[v]`` turns a version ``v`` document into version ``v + 1``; a reader
    can read every version from the oldest upcaster's up to ``version``.
    """

    name: str
    version: int
    model: type[BaseModel]
    kind: str = "canonical"
    description: str = ""
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ConfigError(f"schema {self.name}", f"version {self.version} is below 1")
        late = sorted(v for v in self.upcasters if v >= self.version)
        if late:
            raise ConfigError(
                f"schema {self.name}", f"upcasters from {late} are not older than {self.version}"
            )

    @classmethod
    def of(cls, model: type[BaseModel]) -> Schema:
        """The schema a model declares: ``schema_name`` (default: the class name),
        ``schema_version`` (default 1) and ``schema_upcasters`` class attributes."""
        return cls(
            name=str(getattr(model, "schema_name", model.__name__)),
            version=int(getattr(model, "schema_version", 1)),
            model=model,
            description=(model.__doc__ or "").strip().split("\n\n")[0],
            upcasters=dict(getattr(model, "schema_upcasters", {})),
        )

    @property
    def oldest(self) -> int:
        """The oldest version a reader of this schema still reads."""
        version = self.version
        while version - 1 in self.upcasters:
            version -= 1
        return version

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the current version (with ``x-version``)."""
        out = self.model.model_json_schema()
        out["$id"] = f"urn:interlock:schema:{self.name}:v{self.version}"
        out["x-version"] = self.version
        return out

    def upcast(self, document: Mapping[str, Any], version: int) -> dict[str, Any]:
        """``document`` of ``version`` in the current shape (a copy).

        Raises :class:`tracing.ValidationError` for a version this reader does not
        read: newer than the current one, or older than its oldest upcaster.
        """
        if version > self.version:
            raise ValidationError(
                f"{self.name} version {version} is newer than this reader's {self.version}",
                field="schema_version",
            )
        out = dict(document)
        while version < self.version:
            step = self.upcasters.get(version)
            if step is None:
                raise ValidationError(
                    f"{self.name} version {version} is older than this reader reads "
                    f"(oldest {self.oldest})",
                    field="schema_version",
                )
            out = step(out)
            version += 1
        return out


#: The event envelope's schema.
ENVELOPE_SCHEMA = Schema(
    "envelope",
    SCHEMA_VERSION,
    Event,
    kind="envelope",
    description="One step of a business transaction, as stored in the lineage.",
    upcasters=ENVELOPE_UPCASTERS,
)


# -- compatibility --------------------------------------------------------------------


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found: Mapping[str, Any] = root.get("$defs", {}).get(ref.split("/")[-1], {})
        return found
    return schema


def _types(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    """The JSON types (and referenced definitions) a property schema admits."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        out: set[str] = set()
        for option in schema["anyOf"]:
            out |= _types(option, root)
        return out
    if "enum" in schema:
        return {f"enum:{schema.get('type', 'string')}"}
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind)
    if kind is None:
        return {"object"} if "properties" in schema else {"any"}
    if kind == "array":
        items = schema.get("items", {})
        return {f"array:{t}" for t in _types(items, root)} or {"array"}
    return {kind}


def _object(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object schema a property holds (through a ``$ref`` or an optional's
    ``anyOf``), or ``None`` when it holds no object."""
    schema = _resolve(schema, root)
    if "properties" in schema:
        return schema
    for option in schema.get("anyOf", ()):
        found = _object(option, root)
        if found is not None:
            return found
    return None


def _enum(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[Any]:
    schema = _resolve(schema, root)
    values: set[Any] = set(schema.get("enum", ()))
    for option in schema.get("anyOf", ()):
        values |= _enum(option, root)
    return values


def _object_breaks(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    old_root: Mapping[str, Any],
    new_root: Mapping[str, Any],
    where: str,
    seen: set[tuple[str, str]],
) -> list[str]:
    out: list[str] = []
    old = _resolve(old, old_root)
    new = _resolve(new, new_root)
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    old_required = set(old.get("required", ()))
    for name in sorted(set(new.get("required", ())) - old_required):
        out.append(f"{where}{name}: newly required (a document of the previous version lacks it)")
    for name, before in old_props.items():
        path = f"{where}{name}"
        if name not in new_props:
            out.append(f"{path}: removed (a reader of the previous version reads it)")
            continue
        after = new_props[name]
        admitted = _types(after, new_root)
        # A closed set of strings widened to any string still admits every old value.
        lost = {t for t in _types(before, old_root) - admitted if t.split(":")[-1] not in admitted}
        if lost and "any" not in admitted:
            out.append(f"{path}: no longer admits {', '.join(sorted(lost))}")
        gone = _enum(before, old_root) - _enum(after, new_root)
        if gone and _enum(after, new_root):
            out.append(f"{path}: enum values removed: {', '.join(map(str, sorted(gone)))}")
        inner_old, inner_new = _object(before, old_root), _object(after, new_root)
        if inner_old is None or inner_new is None:
            continue
        key = (str(inner_old.get("title", path)), str(inner_new.get("title", path)))
        if key in seen:
            continue
        seen.add(key)
        out += _object_breaks(inner_old, inner_new, old_root, new_root, f"{path}.", seen)
    return out


def breaking_changes(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What in ``current`` would break a reader of ``previous`` (two JSON Schemas).

    Adding an optional field, relaxing a type (an enum to any string, say) or adding an
    enum value are compatible: every document of the previous version is still valid.
    Removing or retyping a field, requiring a new one, or removing an enum value are
    not. Nested objects are compared field by field.
    """
    return _object_breaks(previous, current, previous, current, "", set())
