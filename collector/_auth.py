"""Roles and API tokens for every control action.

Roles are ordered: viewer < operator < approver < admin; a role may do what any
role below it may. Tokens are stored as SHA-256 hashes only; a token presented as
``Authorization: Bearer <token>`` is hashed and looked up in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from fastapi import HTTPException, Request

__all__ = ["Principal", "Role", "TokenStore", "hash_token", "require_role"]


class Role(IntEnum):
    VIEWER = 10
    OPERATOR = 20
    APPROVER = 30
    ADMIN = 40

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown role {name!r}; expected one of {', '.join(r.name.lower() for r in cls)}"
            ) from None


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role

    def can(self, role: Role) -> bool:
        return self.role >= role


def hash_token(token: str) -> str:
    """The stored form of a token: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Maps token hashes to principals. Build it from configuration:

    >>> store = TokenStore.from_entries([("ops", "operator", hash_token("s3cret"))])
    >>> store.authenticate("s3cret")
    Principal(name='ops', role=<Role.OPERATOR: 20>)
    """

    def __init__(self, principals: Mapping[str, Principal] | None = None) -> None:
        self._by_hash: dict[str, Principal] = dict(principals or {})

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, str]]) -> TokenStore:
        """``(name, role, token_hash)`` triples; a hash must look like ``sha256:<64 hex>``."""
        by_hash: dict[str, Principal] = {}
        for name, role, token_hash in entries:
            if not token_hash.startswith("sha256:") or len(token_hash) != 71:
                raise ValueError(f"token for {name!r} must be stored as sha256:<64 hex digits>")
            by_hash[token_hash] = Principal(name, Role.parse(role))
        return cls(by_hash)

    def add(self, name: str, role: Role, token: str) -> None:
        self._by_hash[hash_token(token)] = Principal(name, role)

    def authenticate(self, token: str | None) -> Principal | None:
        if not token:
            return None
        presented = hash_token(token)
        found: Principal | None = None
        # Compare against every entry so timing does not reveal a near match.
        for stored, principal in self._by_hash.items():
            if hmac.compare_digest(stored, presented):
                found = principal
        return found

    def __len__(self) -> int:
        return len(self._by_hash)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_role(role: Role) -> Callable[..., Principal]:
    """A FastAPI dependency: the caller's principal, or 401/403.

    The app keeps its ``TokenStore`` in ``app.state.tokens``.
    """

    def dependency(request: Request) -> Principal:
        store: TokenStore = request.app.state.tokens
        principal = store.authenticate(_bearer(request))
        if principal is None:
            raise HTTPException(
                status_code=401,
                detail="a bearer token is required for this action",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.can(role):
            raise HTTPException(
                status_code=403,
                detail=f"role {principal.role.name.lower()} may not do this; "
                f"it needs {role.name.lower()}",
            )
        return principal

    return dependency
