"""``python -m adapters.sandbox.servicenow --port N --workdir D``."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from ..salesforce._tls import ensure_certificate
from ._app import Credentials, create_app
from ._launcher import load_or_create_credentials
from ._store import Store


def main(argv: list[str] | None = None) -> None:
    """Serve the sandbox over TLS on 127.0.0.1 until terminated (pysnc speaks only https)."""
    parser = argparse.ArgumentParser(prog="python -m adapters.sandbox.servicenow")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cert, key = args.workdir / "cert.pem", args.workdir / "key.pem"
    ensure_certificate(cert, key)
    credentials = Credentials.from_json(load_or_create_credentials(args.workdir))
    uvicorn.run(
        create_app(Store(user=credentials.username), credentials),
        host="127.0.0.1",
        port=args.port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        access_log=False,  # encoded queries carry customer identifiers
    )


if __name__ == "__main__":
    main()
