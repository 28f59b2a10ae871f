"""The token store file: API tokens an admin creates, lists and revokes with the CLI.

``interlock tokens create`` writes one entry per token to a JSON file (``api.tokens_file``,
default ``var/tokens.json``, mode 0600) holding the name, the role, when it was created and
the token's ``sha256:`` hash, never the token itself. The runtime reads the file beside the
TOML ``[[tokens]]`` entries and ``INTERLOCK_TOKENS``, and reads it again when it changes, so
a revoked token is refused from its next request on.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tracing import ConfigError

from ._roles import _HASH, Role, hash_token

__all__ = ["TokenEntry", "TokenFile"]


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: str
    created: str
    token_hash: str


class TokenFile:
    """The JSON token store at ``path`` (absent means empty).

    >>> import tempfile, pathlib
    >>> f = TokenFile(pathlib.Path(tempfile.mkdtemp()) / "tokens.json")
    >>> token = f.create("ops", Role.OPERATOR)
    >>> [e.name for e in f.entries()], token in f.path.read_text()
    (['ops'], False)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def entries(self) -> list[TokenEntry]:
        """Every stored entry; a malformed file raises :class:`ConfigError` naming it."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        setting = f"tokens file {self.path}"
        try:
            items = json.loads(raw).get("tokens", [])
            out = [
                TokenEntry(str(i["name"]), str(i["role"]), str(i["created"]), str(i["token_hash"]))
                for i in items
            ]
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise ConfigError(setting, f"not a token store: {exc}") from exc
        for entry in out:
            if not _HASH.fullmatch(entry.token_hash):
                raise ConfigError(setting, f"{entry.name!r} must be stored as sha256:<64 hex>")
            try:
                Role.parse(entry.role)
            except ValueError as exc:
                raise ConfigError(setting, str(exc)) from exc
        return out

    def triples(self) -> list[tuple[str, str, str]]:
        return [(e.name, e.role, e.token_hash) for e in self.entries()]

    def create(self, name: str, role: Role) -> str:
        """Store a new token for ``name``; returns the plain token (shown once, not kept)."""
        entries = self.entries()
        if any(e.name == name for e in entries):
            raise ConfigError("name", f"a token named {name!r} exists; revoke it first")
        token = secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        entries.append(TokenEntry(name, role.name.lower(), created, hash_token(token)))
        self._write(entries)
        return token

    def revoke(self, name: str) -> bool:
        """Remove ``name``'s token; False when there was none."""
        entries = self.entries()
        kept = [e for e in entries if e.name != name]
        if len(kept) == len(entries):
            return False
        self._write(kept)
        return True

    def stamp(self) -> tuple[int, int] | None:
        """What changes when the file does (``None`` while it is absent)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _write(self, entries: list[TokenEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"tokens": [asdict(e) for e in entries]}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(body)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
