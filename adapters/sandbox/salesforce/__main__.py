"""``python -m adapters.sandbox.salesforce --port N --workdir D [--page-size N]``."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from ._app import Credentials, create_app
from ._launcher import load_or_create_credentials
from ._store import Store
from ._tls import ensure_certificate, ensure_jwt_keypair, public_key_pem


def main(argv: list[str] | None = None) -> None:
    """Serve the sandbox over TLS on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(prog="python -m adapters.sandbox.salesforce")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--page-size", type=int, default=2000)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    cert, key = args.workdir / "cert.pem", args.workdir / "key.pem"
    ensure_certificate(cert, key)
    # The connected app's certificate: JWT bearer assertions must verify against it.
    jwt_key, jwt_cert = args.workdir / "jwt_key.pem", args.workdir / "jwt_cert.pem"
    ensure_jwt_keypair(jwt_key, jwt_cert)
    credentials = Credentials.from_json(
        load_or_create_credentials(args.workdir),
        jwt_public_key=public_key_pem(jwt_cert.read_bytes()),
    )
    app = create_app(Store(page_size=args.page_size), credentials)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        access_log=False,  # URLs carry SOQL with customer data
    )


if __name__ == "__main__":
    main()
