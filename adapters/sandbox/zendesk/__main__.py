"""``python -m adapters.sandbox.zendesk --port N --workdir D``."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from ._app import Account, create_app
from ._launcher import load_or_create_account
from ._store import Store


def main(argv: list[str] | None = None) -> None:
    """Serve the sandbox on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(prog="python -m adapters.sandbox.zendesk")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    account = Account(**load_or_create_account(args.workdir))
    uvicorn.run(
        create_app(Store(), account),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,  # query strings carry customer identifiers
    )


if __name__ == "__main__":
    main()
