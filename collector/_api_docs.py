"""Pieces every control-API router uses to declare its contract: bounded paging, RFC 3339
times, success models and documented error statuses (answered as :class:`Problem`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, BeforeValidator

from ._problem import Problem

__all__ = [
    "MAX_LIMIT",
    "MAX_OFFSET",
    "IsoDateTime",
    "Limit",
    "Offset",
    "not_found",
    "ok",
    "responses",
]

MAX_LIMIT = 1000
#: The largest ``offset`` any list takes (the store's offsets are 64-bit; this is far
#: past any real list, and keeps a huge number a 422 instead of a store error).
MAX_OFFSET = 2**31 - 1

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    # pydantic would also take a number (epoch seconds) or a date without a zone; the
    # document says RFC 3339 date-time, so that is what a query parameter takes.
    if isinstance(value, str) and not _RFC3339.fullmatch(value.strip()):
        raise ValueError("must be an RFC 3339 date-time with a zone, e.g. 2026-01-31T00:00:00Z")
    return value


#: A date-time query parameter: RFC 3339 with a zone (``...Z`` or ``+hh:mm``), nothing else.
IsoDateTime = Annotated[datetime, BeforeValidator(_rfc3339)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
_DESCRIPTIONS = {
    400: "The request body could not be parsed.",
    401: "No bearer token, or an unknown one.",
    403: "The token's role may not do this.",
    404: "No such resource.",
    409: "The resource is not in a state that allows this.",
    422: "A parameter or the body is invalid (``errors`` names each field).",
    503: "The lineage store or the event bus is unavailable; retry after ``Retry-After``.",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting each error status as a :class:`Problem`.

    >>> sorted(responses(404, 409))
    [404, 409]
    """
    return {s: {"model": Problem, "description": _DESCRIPTIONS.get(s, "Error.")} for s in statuses}


def not_found() -> dict[int | str, dict[str, Any]]:
    """``responses(404)``: for operations that look a resource up by its path."""
    return responses(404)


def ok(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring ``model`` as the success body.

    Used with ``response_model=None``: the model is the documented contract (held by the
    schemathesis contract test), not a runtime filter that could turn a field a query
    gained, or a null it may hold, into a 500.
    """
    return {status: {"model": model, "description": "Successful Response"}}
