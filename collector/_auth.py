"""Role checks on the control API's routes (FastAPI): the bearer token, the
principal it names (collector._roles) and the role a route requires.

Reads (the viewer role) need a token too unless ``app.state.require_auth_for_reads``
is set to false; an unknown token is refused even for reads.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tracing import ForbiddenError, UnauthorizedError

from ._roles import ANONYMOUS, Principal, Role, TokenStore, hash_token, load_tokens

__all__ = [
    "ANONYMOUS",
    "ControlRoute",
    "Principal",
    "Role",
    "RoleCheck",
    "TokenStore",
    "bearer_scheme",
    "hash_token",
    "load_tokens",
    "require_role",
]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


#: The OpenAPI security scheme every role-checked operation declares ("bearer").
bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    description="A role token: `Authorization: Bearer <token>` (viewer < operator < "
    "approver < admin).",
    auto_error=False,
)


class RoleCheck:
    """The dependency :func:`require_role` returns; ``role`` is what it needs.

    The control API runs it before the request body is read (see
    ``collector._api``), so a caller without the role gets 401/403, never a 422
    about a body it may not send.
    """

    def __init__(self, role: Role) -> None:
        self.role = role

    def check(self, request: Request) -> Principal:
        store: TokenStore = request.app.state.tokens
        token = _bearer(request)
        if (
            token is None
            and self.role <= Role.VIEWER
            and not getattr(request.app.state, "require_auth_for_reads", True)
        ):
            return ANONYMOUS
        principal = store.authenticate(token)
        if principal is None:
            # Answered 401 with ``WWW-Authenticate: Bearer`` (collector._problem).
            raise UnauthorizedError(
                "a bearer token is required for this action"
                if token is None
                else "the bearer token is not known"
            )
        if not principal.can(self.role):
            raise ForbiddenError(
                f"role {principal.role.name.lower()} may not do this; "
                f"it needs {self.role.name.lower()}"
            )
        return principal

    def __call__(
        self,
        request: Request,
        # Declares the bearer scheme in OpenAPI; the header is read by ``check``.
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal:
        return self.check(request)


def _role_checks(dependant: Dependant) -> list[RoleCheck]:
    found: list[RoleCheck] = []
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleCheck):
            found.append(dep.call)
        found += _role_checks(dep)
    return found


class ControlRoute(APIRoute):
    """The route class of every control-API router: the role first, then the body.

    FastAPI reads and parses a request body before it solves the dependencies, so a
    malformed body would answer 400/422 before the role check's 401/403. This route
    runs the strongest :class:`RoleCheck` among its own dependencies first. Build
    routers with ``APIRouter(route_class=ControlRoute)``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        checks = _role_checks(self.dependant)
        if not checks:
            return handler
        strongest = max(checks, key=lambda c: c.role)

        async def role_first(request: Request) -> Response:
            strongest.check(request)  # raises 401/403
            return await handler(request)

        return role_first

    @property
    def required_role(self) -> Role | None:
        """The role this route needs, or ``None`` when it checks none."""
        checks = _role_checks(self.dependant)
        return max(c.role for c in checks) if checks else None


def require_role(role: Role) -> RoleCheck:
    """A FastAPI dependency: the caller's principal, or 401/403.

    The app keeps its ``TokenStore`` in ``app.state.tokens``. A request without a
    token is the anonymous viewer only when ``role`` is viewer and
    ``app.state.require_auth_for_reads`` is false (it is true when not set).
    """
    return RoleCheck(role)
