"""Stripe's wire conventions: form-encoded nested parameters and money in minor units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

from tracing import ValidationError

__all__ = ["ZERO_DECIMAL_CURRENCIES", "encode_form", "from_minor_units", "to_minor_units"]

# Stripe charges these in whole units (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip

FormValue = str | int | bool | Decimal | Mapping[str, "FormValue"] | Sequence["FormValue"] | None


def _scalar(value: str | int | bool | Decimal) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    return str(value)


def encode_form(data: Mapping[str, FormValue]) -> list[tuple[str, str]]:
    """Flatten nested data the way Stripe's clients do.

    >>> encode_form({"items": [{"plan": "p", "quantity": 2}], "metadata": {"a": "b"}})
    [('items[0][plan]', 'p'), ('items[0][quantity]', '2'), ('metadata[a]', 'b')]

    ``None`` values are left out; strings are never treated as sequences.
    """
    pairs: list[tuple[str, str]] = []

    def walk(key: str, value: FormValue) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                walk(f"{key}[{sub_key}]", sub_value)
        elif isinstance(value, str | int | bool | Decimal):
            pairs.append((key, _scalar(value)))
        else:
            for index, item in enumerate(value):
                walk(f"{key}[{index}]", item)

    for key, value in data.items():
        walk(key, value)
    return pairs


def _exponent(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``Decimal("12.34"), "usd"`` -> ``1234``; refuses fractions of the minor unit."""
    try:
        minor = amount.scaleb(_exponent(currency))
        if minor != minor.to_integral_value() or minor < 0:
            raise ValidationError(
                f"{amount} {currency.upper()} is not a whole, non-negative number of minor units",
                field="unit_price",
                system="billing",
            )
        return int(minor)
    except InvalidOperation as exc:
        raise ValidationError(f"not an amount: {amount!r}", field="unit_price") from exc


def from_minor_units(amount: int, currency: str) -> Decimal:
    """``1234, "usd"`` -> ``Decimal("12.34")``."""
    return Decimal(amount).scaleb(-_exponent(currency))
