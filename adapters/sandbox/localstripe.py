"""Launch localstripe, the Stripe emulator used as the billing platform in tests and demos.

Example::

    with LocalStripeServer() as billing:
        billing.configure_webhook("http://127.0.0.1:9000/webhooks/stripe", "whsec_x")
        adapter = BillingAdapter(billing.url, billing.api_key, attach_test_card=True)

Run by hand: ``python -m adapters.sandbox.localstripe --port 8420``.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
from collections.abc import Sequence
from pathlib import Path

import httpx

from collector.process import ManagedProcess, ManagedServer, free_port

__all__ = ["LocalStripeServer", "main"]


class LocalStripeServer(ManagedServer):
    """localstripe as a child process on 127.0.0.1, state in memory; a context manager.

    ``port`` defaults to a free port. Any ``sk_test_...`` key is accepted by
    localstripe; ``api_key`` is a fresh one per server. ``stop()`` is safe twice.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        ready_timeout: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Any sk_test_ key works; the key stays out of reprs, hence out of logs.
        self.api_key = "sk_test_" + secrets.token_hex(12)
        self.ready_timeout = ready_timeout
        self.log_path = log_path

    def _launch(self) -> ManagedProcess:
        return ManagedProcess.python_module(
            "localstripe",
            "adapters.sandbox.localstripe",
            "--port",
            str(self.port),
            # localstripe answers 404 at its root once it listens: good enough for ready.
            ready_url=self.url + "/",
            ready_timeout=self.ready_timeout,
            log_path=self.log_path,
        ).start()

    def configure_webhook(self, url: str, secret: str, events: list[str] | None = None) -> None:
        """Register (or replace) a webhook endpoint; ``events`` None means every type.

        localstripe signs each delivery like Stripe (``Stripe-Signature: t=..,v1=..``)
        about a second after the event, once, without retries.
        """
        data = {"url": url, "secret": secret}
        data.update({f"events[{i}]": event for i, event in enumerate(events or [])})
        # A stable ID per URL: configuring the same receiver again replaces it.
        hook_id = "wh_" + hashlib.sha256(url.encode()).hexdigest()[:16]
        response = httpx.post(f"{self.url}/_config/webhooks/{hook_id}", data=data, timeout=10.0)
        if response.status_code >= 400:
            # The secret is deliberately not part of the message.
            raise RuntimeError(
                f"localstripe refused the webhook for {url}: HTTP {response.status_code}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve localstripe on 127.0.0.1 with in-memory state."""
    parser = argparse.ArgumentParser(prog="python -m adapters.sandbox.localstripe")
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args(argv)
    from ._localstripe_app import serve

    serve(args.port)


if __name__ == "__main__":
    main()
