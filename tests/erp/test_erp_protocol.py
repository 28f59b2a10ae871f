"""Tryton's JSON dialect and error bodies, without a server."""

from __future__ import annotations

import datetime
import types
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

import adapters.erp
from adapters.erp._codec import dumps, loads
from adapters.erp._rpc import CreditHold, _translate_error
from tracing import (
    AuthError,
    ConflictError,
    RateLimited,
    RemoteError,
    ValidationError,
)


def test_all_is_honest() -> None:
    exported = set(adapters.erp.__all__)
    assert all(hasattr(adapters.erp, name) for name in exported)
    public = {
        name
        for name, value in vars(adapters.erp).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == exported


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimals_round_trip_exactly(value: Decimal) -> None:
    assert loads(dumps({"v": value}))["v"] == value


@given(st.datetimes(), st.dates())
def test_dates_round_trip(when: datetime.datetime, day: datetime.date) -> None:
    assert loads(dumps([when, day])) == [when, day]


def test_wire_shape_matches_tryton() -> None:
    assert loads(dumps(Decimal("100"))) == Decimal("100")
    assert dumps(Decimal("1.50")) == '{"__class__":"Decimal","decimal":"1.50"}'
    assert dumps(datetime.date(2026, 5, 1)) == (
        '{"__class__":"date","year":2026,"month":5,"day":1}'
    )


def test_credit_limit_warning_is_a_credit_hold() -> None:
    error = _translate_error(
        "model.sale.sale.confirm",
        ["UserWarning", ["abc.credit_limit_amount", "The party will exceed", ""]],
        transition=True,
    )
    assert isinstance(error, CreditHold)
    assert error.warning_key == "abc.credit_limit_amount"


def test_other_errors() -> None:
    def t(body: object, transition: bool = False) -> Exception:
        return _translate_error("m", body, transition=transition)

    assert isinstance(t(["UserWarning", ["k.other", "msg", ""]]), ConflictError)
    assert not isinstance(t(["UserWarning", ["k.other", "msg", ""]]), CreditHold)
    user_error = t(["UserError", ["bad", "", None]])
    assert type(user_error) is ValidationError
    assert type(t(["UserError", ["no", "", None]], transition=True)) is ConflictError
    assert isinstance(t(["ConcurrencyException", "changed"]), ConflictError)
    assert isinstance(t(["LoginException", ["password", "Password", "password"]]), AuthError)
    assert isinstance(t(["RateLimitException", []]), RateLimited)
    fault = t(["'res.user'", "Traceback (most recent call last): secret internals"])
    assert type(fault) is RemoteError
    assert "Traceback" not in str(fault)
