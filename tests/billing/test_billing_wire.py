"""Stripe wire conventions, the public surface, and the localstripe launcher."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adapters.billing as billing_pkg
from adapters._canonical import BillingInterval
from adapters.billing import encode_form, from_minor_units, plan_id_for, to_minor_units
from adapters.sandbox.localstripe import LocalStripeServer
from tracing import ValidationError


def test_all_is_honest() -> None:
    # Submodules imported elsewhere (the ``plugin`` entry point) are not the package's API.
    public = {
        name
        for name in dir(billing_pkg)
        if not name.startswith("_") and not isinstance(getattr(billing_pkg, name), ModuleType)
    }
    assert set(billing_pkg.__all__) == public - {"annotations"}
    for name in billing_pkg.__all__:
        assert getattr(billing_pkg, name).__doc__, f"{name} has no docstring"


def test_encode_form_nests_like_stripe() -> None:
    assert encode_form(
        {
            "customer": "cus_1",
            "items": [{"plan": "p1", "quantity": 2, "metadata": {"k": "v"}}],
            "metadata": {"order_ref": "006"},
            "email": None,
            "flag": True,
        }
    ) == [
        ("customer", "cus_1"),
        ("items[0][plan]", "p1"),
        ("items[0][quantity]", "2"),
        ("items[0][metadata][k]", "v"),
        ("metadata[order_ref]", "006"),
        ("flag", "true"),
    ]


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("49.90", "EUR", 4990), ("0", "usd", 0), ("1200", "JPY", 1200), ("10", "eur", 1000)],
)
def test_minor_units(amount: str, currency: str, minor: int) -> None:
    assert to_minor_units(Decimal(amount), currency) == minor
    assert from_minor_units(minor, currency) == Decimal(amount)


@pytest.mark.parametrize(("amount", "currency"), [("0.001", "EUR"), ("1.5", "JPY"), ("-1", "EUR")])
def test_minor_units_refuse_what_stripe_cannot_charge(amount: str, currency: str) -> None:
    with pytest.raises(ValidationError):
        to_minor_units(Decimal(amount), currency)


@given(cents=st.integers(0, 10**12))
def test_minor_units_round_trip(cents: int) -> None:
    assert to_minor_units(from_minor_units(cents, "eur"), "eur") == cents


@given(sku=st.text(min_size=1, max_size=80))
def test_plan_ids_are_url_safe_and_distinct_per_sku(sku: str) -> None:
    plan = plan_id_for(sku, 100, "EUR", BillingInterval.MONTH)
    assert plan == plan_id_for(sku, 100, "eur", BillingInterval.MONTH)
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in plan)
    assert plan != plan_id_for(sku + "x", 100, "EUR", BillingInterval.MONTH)


@pytest.mark.slow
def test_launcher_binds_loopback_keeps_state_in_memory_and_stops_twice() -> None:
    pickle = Path("/tmp/localstripe.pickle")
    before = pickle.stat().st_mtime_ns if pickle.exists() else None
    server = LocalStripeServer().start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.api_key.startswith(
            "sk_test_"
        )
        response = httpx.post(
            server.url + "/v1/customers",
            data={"name": "x"},
            headers={"Authorization": f"Bearer {server.api_key}"},
        )
        assert response.status_code == 200
        # Listening on 127.0.0.1 only: the wildcard IPv6 address localstripe uses is not bound.
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            assert sock.connect_ex(("::1", server.port)) != 0
        server.configure_webhook("http://127.0.0.1:9/hook", "whsec_x", events=["invoice.paid"])
        with pytest.raises(RuntimeError, match="refused") as caught:
            server.configure_webhook("ftp://nowhere", "whsec_secret_value")
        assert "whsec_secret_value" not in str(caught.value)
    finally:
        server.stop()
        server.stop()
    assert not server.alive()
    after = pickle.stat().st_mtime_ns if pickle.exists() else None
    assert after == before
