"""Principals, roles and the token store: who may do what, with no web framework.

Roles are ordered: viewer < operator < approver < admin; a role may do what any
role below it may. Tokens are stored as SHA-256 hashes only; a token presented as
``Authorization: Bearer <token>`` is hashed and looked up in constant time.

Tokens come from configuration, never from code:

- the TOML file's ``[[tokens]]`` array (``name``, ``role``, ``token_hash``)::

      [[tokens]]
      name = "alice"
      role = "approver"
      token_hash = "sha256:9f86d0…"      # `interlock tokens hash` prints this form

- the token store file (``api.tokens_file``, default ``var/tokens.json``), written by
  ``interlock tokens create`` / ``revoke`` and read again whenever it changes;
- ``INTERLOCK_TOKENS``: comma-separated ``name:role:sha256:<hex>`` entries; an entry
  ``name:role:<plain token>`` is hashed on load and the plain value is not kept.

Reads (the viewer role) need a token too unless ``app.state.require_auth_for_reads``
is set to false; an unknown token is refused even for reads.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from tracing import ConfigError

__all__ = ["ANONYMOUS", "Principal", "Role", "TokenStore", "hash_token", "load_tokens"]

_HASH = re.compile(r"sha256:[0-9a-f]{64}")

log = logging.getLogger("interlock.auth")


class Role(IntEnum):
    """What a caller may do; each role includes the ones below it."""

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
    """An authenticated caller (or the anonymous viewer)."""

    name: str
    role: Role

    def can(self, role: Role) -> bool:
        return self.role >= role


#: Who reads without a token when reads do not require authentication.
ANONYMOUS = Principal("anonymous", Role.VIEWER)


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
        #: What did not come from a watched file (``add``, ``merge``, configuration).
        self._base: dict[str, Principal] = dict(self._by_hash)
        self._source: _WatchedSource | None = None
        self._stamp: object = None

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, str]]) -> TokenStore:
        """``(name, role, token_hash)`` triples; a hash must look like ``sha256:<64 hex>``."""
        by_hash: dict[str, Principal] = {}
        for name, role, token_hash in entries:
            if not _HASH.fullmatch(token_hash):
                raise ValueError(f"token for {name!r} must be stored as sha256:<64 hex digits>")
            by_hash[token_hash] = Principal(name, Role.parse(role))
        return cls(by_hash)

    def add(self, name: str, role: Role, token: str) -> None:
        """Add a principal by its plain token (hashed here; the plain value is not kept)."""
        self._by_hash[hash_token(token)] = Principal(name, role)
        self._base[hash_token(token)] = Principal(name, role)

    def merge(self, other: TokenStore) -> None:
        """Add every principal of ``other`` (its entries win on the same hash)."""
        self._by_hash.update(other._by_hash)
        self._base.update(other._by_hash)

    def watch(self, source: _WatchedSource) -> None:
        """Also accept the tokens of ``source`` (the token store file), read again whenever
        it changes so a revoked token is refused from its next request on. A file that
        cannot be read raises :class:`tracing.ConfigError` here; later, the last good
        contents stay in force and the problem is logged."""
        self._source = source
        self._stamp = source.stamp()
        self._by_hash = {**self._base, **_principals(source.triples())}

    def _refresh(self) -> None:
        if self._source is None:
            return
        stamp = self._source.stamp()
        if stamp == self._stamp:
            return
        try:
            loaded = _principals(self._source.triples())
        except ConfigError as exc:
            log.error("token store file not reloaded: %s", exc)
        else:
            self._by_hash = {**self._base, **loaded}
        self._stamp = stamp

    def authenticate(self, token: str | None) -> Principal | None:
        if not token:
            return None
        self._refresh()
        presented = hash_token(token)
        found: Principal | None = None
        # Compare against every entry so timing does not reveal a near match.
        for stored, principal in self._by_hash.items():
            if hmac.compare_digest(stored, presented):
                found = principal
        return found

    def __len__(self) -> int:
        self._refresh()
        return len(self._by_hash)


class _WatchedSource(Protocol):
    def stamp(self) -> object: ...

    def triples(self) -> list[tuple[str, str, str]]: ...


def _principals(triples: Iterable[tuple[str, str, str]]) -> dict[str, Principal]:
    return {token_hash: Principal(name, Role.parse(role)) for name, role, token_hash in triples}


def _from_config(entries: Sequence[Mapping[str, str]]) -> TokenStore:
    triples: list[tuple[str, str, str]] = []
    for index, entry in enumerate(entries):
        setting = f"tokens[{index}]"
        missing = [key for key in ("name", "role", "token_hash") if not entry.get(key)]
        if missing:
            raise ConfigError(setting, f"needs {', '.join(missing)}")
        extra = sorted(set(entry) - {"name", "role", "token_hash"})
        if extra:
            # A plain ``token`` key here would put a secret in a config file.
            raise ConfigError(setting, f"unknown keys {', '.join(extra)}; store token_hash only")
        triples.append((entry["name"], entry["role"], entry["token_hash"]))
    try:
        return TokenStore.from_entries(triples)
    except ValueError as exc:
        raise ConfigError("tokens", str(exc)) from exc


def _from_env(value: str) -> TokenStore:
    store = TokenStore()
    for index, raw in enumerate(part.strip() for part in value.split(",")):
        if not raw:
            continue
        name, sep1, rest = raw.partition(":")
        role_name, sep2, secret = rest.partition(":")
        setting = f"INTERLOCK_TOKENS[{index}]"
        if not (sep1 and sep2 and name and role_name and secret):
            raise ConfigError(setting, "expected name:role:sha256:<hex> or name:role:<token>")
        try:
            role = Role.parse(role_name)
        except ValueError as exc:
            raise ConfigError(setting, str(exc)) from exc
        if secret.startswith("sha256:"):
            if not _HASH.fullmatch(secret):
                raise ConfigError(setting, "a hash must be sha256:<64 lowercase hex digits>")
            store._by_hash[secret] = Principal(name, role)
        else:
            store.add(name, role, secret)
    return store


def load_tokens(
    entries: Sequence[Mapping[str, str]] = (),
    *,
    env: Mapping[str, str] | None = None,
    file: str | Path | None = None,
) -> TokenStore:
    """The token store from the TOML ``[[tokens]]`` entries plus ``INTERLOCK_TOKENS``,
    plus the token store file ``file`` (``interlock tokens create``), watched for changes.

    A bad entry raises :class:`tracing.ConfigError` naming it.

    >>> store = load_tokens(env={"INTERLOCK_TOKENS": "ops:operator:s3cret"})
    >>> store.authenticate("s3cret").role.name
    'OPERATOR'
    """
    store = _from_config(entries)
    value = (env or {}).get("INTERLOCK_TOKENS", "")
    if value.strip():
        store.merge(_from_env(value))
    if file is not None:
        from ._token_file import TokenFile

        store.watch(TokenFile(file))
    return store
