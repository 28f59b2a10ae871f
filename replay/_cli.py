"""``interlock audit verify`` and ``interlock tokens hash|create|list|revoke``.

The CLI never opens DuckDB (the collector is its one writer): ``audit verify``
asks the control API, which recomputes the chain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

from collector import Role, TokenFile, hash_token, load_settings
from tracing import ConfigError

__all__ = ["register_cli"]

_DEFAULT_API = "http://127.0.0.1:7400"


def _audit_verify(args: argparse.Namespace) -> int:
    url = (args.api or os.environ.get("INTERLOCK_API_URL") or _DEFAULT_API).rstrip("/")
    token = args.token or os.environ.get("INTERLOCK_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url}/api/v1/audit/verify", headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"cannot reach the control API at {url}: {exc}", file=sys.stderr)
        return 2
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        print(f"the control API answered {response.status_code}: {detail}", file=sys.stderr)
        return 2
    verdict: dict[str, Any] = response.json()
    if args.json:
        print(json.dumps(verdict, indent=2))
    else:
        state = "intact" if verdict["ok"] else "TAMPERED"
        print(
            f"audit trail {state}: {verdict['entries']} entries, last {verdict['last_seq']}, "
            f"head {verdict['head_seq']}"
        )
        for problem in verdict["problems"]:
            print(f"  problem: {problem}")
        for warning in verdict["warnings"]:
            print(f"  warning: {warning}")
    return 0 if verdict["ok"] else 1


def _tokens_hash(args: argparse.Namespace) -> int:
    token = sys.stdin.readline().strip()
    if not token:
        print("no token on stdin", file=sys.stderr)
        return 2
    print(hash_token(token))
    return 0


def _token_file(args: argparse.Namespace) -> TokenFile:
    if args.file:
        return TokenFile(args.file)
    return TokenFile(load_settings(args.config).api.tokens_file)


def _tokens_create(args: argparse.Namespace) -> int:
    try:
        role = Role.parse(args.role)
    except ValueError as exc:
        raise ConfigError("--role", str(exc)) from exc
    store = _token_file(args)
    token = store.create(args.name, role)
    print(token)
    print(
        f"created {role.name.lower()} token {args.name!r} in {store.path} "
        "(shown once; only its hash is stored)",
        file=sys.stderr,
    )
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    entries = _token_file(args).entries()
    if not entries:
        print("no tokens", file=sys.stderr)
        return 0
    width = max(len(e.name) for e in entries)
    print(f"{'NAME':<{width}}  {'ROLE':<8}  CREATED")
    for e in entries:
        print(f"{e.name:<{width}}  {e.role:<8}  {e.created}")
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    store = _token_file(args)
    if not store.revoke(args.name):
        print(f"no token named {args.name!r} in {store.path}", file=sys.stderr)
        return 1
    print(f"revoked {args.name!r}", file=sys.stderr)
    return 0


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit verify`` and ``tokens hash``; each sets ``func(args) -> int``.

    ``audit verify`` exits 0 when the trail is intact, 1 when tampered, 2 when
    the API cannot answer.
    """
    audit = subparsers.add_parser("audit", help="the replay audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the audit hash chain (via the API)")
    verify.add_argument(
        "--api", help=f"control API URL (default $INTERLOCK_API_URL or {_DEFAULT_API})"
    )
    verify.add_argument("--token", help="bearer token (default $INTERLOCK_API_TOKEN)")
    verify.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.set_defaults(func=_audit_verify)

    tokens = subparsers.add_parser("tokens", help="API tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    hashed = tokens_sub.add_parser(
        "hash", help="print the sha256:<hex> form of a token read from stdin"
    )
    hashed.set_defaults(func=_tokens_hash)

    def file_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--file", help="token store file (default: api.tokens_file, var/tokens.json)"
        )
        command.add_argument("--config", help="TOML settings file (default: $INTERLOCK_CONFIG)")

    create = tokens_sub.add_parser(
        "create", help="create a token, print it once, store only its hash"
    )
    create.add_argument("--role", required=True, help="viewer, operator, approver or admin")
    create.add_argument("--name", required=True, help="who or what the token is for")
    file_options(create)
    create.set_defaults(func=_tokens_create)
    listed = tokens_sub.add_parser("list", help="names, roles and creation times (no tokens)")
    file_options(listed)
    listed.set_defaults(func=_tokens_list)
    revoke = tokens_sub.add_parser("revoke", help="remove a token; refused from then on")
    revoke.add_argument("name", help="the token's name")
    file_options(revoke)
    revoke.set_defaults(func=_tokens_revoke)
