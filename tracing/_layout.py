"""Where each field of the envelope lives outside Python, derived from the envelope.

The envelope's fields are declared once, on :class:`~tracing.Event`. Everything that
stores, ships or reads an envelope derives its shape from an :class:`EnvelopeLayout`
of that model instead of listing the fields again:

    the lineage's ``events`` columns and their types     (collector's store)
    the Arrow batch and the msgspec decode structs        (collector's ingest)
    the Kafka headers of a published event                (collector's transport)
    the rows read back into events, the API's event JSON  (replay, control API)

A field's column is its own name and its type follows from the annotation; a nested
model (``error``) becomes one column per field, prefixed with the field's name
(``error_reason``). Exceptions are written where the field is declared, as
:class:`Stored` metadata: ``trace_flags: Annotated[int | None, Stored(type="uint8")]``.

>>> layout = EnvelopeLayout(Event)
>>> [c.name for c in layout.columns][:3]
['event_id', 'correlation_id', 'causation_id']
>>> layout.column("error_status").path
('error', 'status_code')
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache, cached_property
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from ._envelope import Event, Stored
from ._errors import ConfigError

__all__ = [
    "ENVELOPE",
    "LOGICAL_TYPES",
    "Column",
    "EnvelopeLayout",
    "FieldSpec",
    "Stored",
    "field_specs",
    "layout_of",
]

#: The logical column types a field can have; the store maps each to its engine's type.
LOGICAL_TYPES = ("text", "int", "uint8", "float", "bool", "decimal", "timestamp", "json")

_SCALARS: tuple[tuple[type, str], ...] = (
    (bool, "bool"),  # before int: bool is an int
    (int, "int"),
    (float, "float"),
    (Decimal, "decimal"),
    (datetime, "timestamp"),
    (str, "text"),
)


@dataclass(frozen=True, slots=True)
class Column:
    """One lineage column: where it comes from in the envelope and its logical type."""

    name: str
    #: The field path in the envelope: ``("kind",)`` or ``("error", "reason")``.
    path: tuple[str, ...]
    type: str
    #: The column admits NULL: the field may be ``None``, or has an empty default
    #: (``""``, ``{}``) that a NULL reads back as.
    nullable: bool
    #: ``""`` is stored as NULL and NULL reads back as ``""``.
    empty_as_null: bool = False
    #: The value is a :class:`enum.StrEnum` member, stored as its value.
    enum: bool = False
    #: The field has its own length limit (so it is no plain identifier).
    bounded: bool = False
    #: The model takes ``None`` for the field (else a NULL reads as its default).
    optional: bool = True


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of an envelope model, as a decoder other than pydantic needs it."""

    name: str
    #: The annotation without ``None`` (``str`` for ``str | None``).
    annotation: Any
    optional: bool
    required: bool
    #: The default value (``None`` when ``factory``).
    default: Any
    #: The model makes the default itself (a new event ID, "now").
    factory: bool
    #: The field's constraints (``annotated_types`` ``Ge``, ``Le``, ``MaxLen`` ...).
    constraints: tuple[Any, ...]
    #: The model validates the field with code of its own (a field validator).
    validated: bool
    #: The nested model, when the field is one.
    model: type[BaseModel] | None


def field_specs(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """The fields of ``model`` in declaration order."""
    checked: set[str] = set()
    for decorator in model.__pydantic_decorators__.field_validators.values():
        checked.update(decorator.info.fields)
    out: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        base, optional, extra = _optional(info.annotation)
        nested = base if isinstance(base, type) and issubclass(base, BaseModel) else None
        factory = info.default_factory is not None
        out.append(
            FieldSpec(
                name=name,
                annotation=base,
                optional=optional,
                required=info.is_required(),
                default=None if factory or info.is_required() else info.default,
                factory=factory,
                constraints=tuple(m for m in (*info.metadata, *extra) if not isinstance(m, Stored)),
                validated=name in checked,
                model=nested,
            )
        )
    return tuple(out)


def _optional(annotation: Any) -> tuple[Any, bool, tuple[Any, ...]]:
    """(the annotation without ``None`` and ``Annotated``, whether ``None`` was
    allowed, the ``Annotated`` metadata an optional kept inside)."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            annotation, optional = args[0], len(args) < len(get_args(annotation))
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        return base, optional, tuple(extra)
    return annotation, optional, ()


def _stored(metadata: Sequence[Any]) -> Stored:
    for item in metadata:
        if isinstance(item, Stored):
            return item
    return Stored()


def _has_max_length(metadata: Sequence[Any]) -> bool:
    return any(getattr(item, "max_length", None) is not None for item in metadata)


def _logical(base: Any, where: str) -> tuple[str, bool]:
    """(logical type, is an enum) of a scalar annotation."""
    if isinstance(base, type) and issubclass(base, StrEnum):
        return "text", True
    if get_origin(base) in (dict, Mapping) or base in (dict, Mapping):
        return "json", False
    for python, logical in _SCALARS:
        if isinstance(base, type) and issubclass(base, python):
            return logical, False
    raise ConfigError(
        f"envelope field {where}", f"no column type for {base!r}; add Stored(type=...)"
    )


def _columns(model: type[BaseModel], prefix: tuple[str, ...]) -> list[Column]:
    out: list[Column] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        where = ".".join(path)
        base, optional, extra = _optional(info.annotation)
        stored = _stored((*info.metadata, *extra))
        if isinstance(base, type) and issubclass(base, BaseModel):
            for inner in _columns(base, path):
                out.append(
                    Column(
                        inner.name,
                        inner.path,
                        inner.type,
                        True,  # the whole nested value may be absent
                        inner.empty_as_null,
                        inner.enum,
                        inner.bounded,
                        inner.optional,
                    )
                )
            continue
        logical, enum = _logical(base, where)
        if stored.type is not None:
            if stored.type not in LOGICAL_TYPES:
                raise ConfigError(f"envelope field {where}", f"unknown column type {stored.type!r}")
            logical = stored.type
        column = stored.column or name
        empty_default = not info.is_required() and (
            info.default in ("", {}, []) or info.default_factory in (dict, list)
        )
        out.append(
            Column(
                "_".join((*prefix, column)),
                path,
                logical,
                optional or stored.empty_as_null or empty_default,
                stored.empty_as_null,
                enum,
                _has_max_length((*info.metadata, *extra)),
                optional,
            )
        )
    return out


class EnvelopeLayout:
    """The columns, headers and read-back of one envelope model.

    Build one per model (``ENVELOPE`` is the one of :class:`~tracing.Event`); a
    model with another field gets a layout with another column, and every reader
    and writer built on that layout carries it.
    """

    def __init__(self, model: type[BaseModel] = Event) -> None:
        self.model = model
        self.columns: tuple[Column, ...] = tuple(_columns(model, ()))
        self.names: tuple[str, ...] = tuple(c.name for c in self.columns)
        names = [c.name for c in self.columns]
        twins = sorted({n for n in names if names.count(n) > 1})
        if twins:
            raise ConfigError("envelope fields", f"share columns: {', '.join(twins)}")
        #: The top-level fields, in declaration order (the API's event JSON keys).
        self.fields: tuple[str, ...] = tuple(model.model_fields)
        self._by_name = {c.name: c for c in self.columns}
        headers: list[tuple[str, str]] = []
        for name, info in model.model_fields.items():
            header = _stored((*info.metadata, *_optional(info.annotation)[2])).header
            if header is not None:
                headers.append((header, name))
        #: ``(Kafka header, field)`` for every field sent as a header too.
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        return self._by_name[name]

    def header(self, field: str) -> str:
        """The Kafka header that carries ``field``."""
        for header, name in self.headers:
            if name == field:
                return header
        raise KeyError(field)

    @cached_property
    def nested(self) -> dict[str, tuple[Column, ...]]:
        """Top-level fields that are models, with their columns."""
        out: dict[str, list[Column]] = {}
        for c in self.columns:
            if len(c.path) > 1:
                out.setdefault(c.path[0], []).append(c)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def identifiers(self) -> tuple[str, ...]:
        """Top-level text fields without a limit of their own (identifiers, kinds)."""
        return tuple(
            c.name
            for c in self.columns
            if len(c.path) == 1 and c.type == "text" and not c.enum and not c.bounded
        )

    def fields_of(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The envelope's fields from a stored row (by column name).

        Columns a row lacks (a file written before the field existed) read as
        absent, so the model's default applies; a JSON column stored as text is
        parsed; a nested model whose columns are all NULL is ``None``.
        """
        out: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for c in self.columns:
            if c.name not in row:
                continue
            value = row[c.name]
            if c.type == "json" and isinstance(value, str | bytes):
                value = json.loads(value)
            if value is None and c.empty_as_null:
                value = ""
            if len(c.path) == 1:
                if value is not None or c.optional:
                    out[c.name] = value
            else:
                nested.setdefault(c.path[0], {})[c.path[1]] = value
        for name, parts in nested.items():
            out[name] = None if all(v is None for v in parts.values()) else parts
        return out

    def event(self, row: Mapping[str, Any]) -> BaseModel:
        """The envelope stored in ``row`` (by column name), validated by the model."""
        return self.model.model_validate(self.fields_of(row))


@cache
def layout_of(model: type[BaseModel]) -> EnvelopeLayout:
    """The one layout of ``model`` (built on first use)."""
    return EnvelopeLayout(model)


#: The layout of :class:`~tracing.Event`.
ENVELOPE = layout_of(Event)
