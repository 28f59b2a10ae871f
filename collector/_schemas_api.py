"""``GET /api/v1/schemas``: the published schemas, each as JSON Schema.

What a client integrating with Interlock (or a team changing a canonical object)
reads to know the shapes: the event envelope and every canonical object an
installed flow carries, with its current version and the oldest version a
reader of it still reads (through its upcasters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends

from tracing import NotFoundError, Schema

from ._auth import ControlRoute, Role, require_role

__all__ = ["schemas_router"]


def _summary(schema: Schema) -> dict[str, Any]:
    return {
        "name": schema.name,
        "kind": schema.kind,
        "version": schema.version,
        "oldest_readable": schema.oldest,
        "description": schema.description,
        "url": f"/api/v1/schemas/{schema.name}",
    }


def schemas_router(schemas: Sequence[Schema]) -> APIRouter:
    """The schemas routes (viewer role) over ``schemas`` (``Host.schemas``)."""
    by_name = {s.name: s for s in schemas}
    router = APIRouter(prefix="/api/v1", tags=["schemas"], route_class=ControlRoute)
    viewer = Depends(require_role(Role.VIEWER))

    @router.get("/schemas", dependencies=[viewer])
    async def list_schemas() -> dict[str, Any]:
        """Every published schema: name, kind (envelope or canonical), current version,
        the oldest version a reader still reads, and where its JSON Schema is."""
        return {"schemas": [_summary(s) for s in by_name.values()]}

    @router.get("/schemas/{name}", dependencies=[viewer])
    async def get_schema(name: str) -> dict[str, Any]:
        """One schema's current version as JSON Schema (``x-version`` names it)."""
        schema = by_name.get(name)
        if schema is None:
            raise NotFoundError(f"no schema {name!r}")
        return schema.json_schema()

    return router
