"""How the dashboard writes money, durations, counts and times.

Pure functions, so every page says "EUR 1,250.00" and "1.2 s" the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = [
    "MISSING",
    "at_risk_text",
    "audit_details",
    "format_age",
    "format_count",
    "format_duration_ms",
    "format_money",
    "format_money_by_currency",
    "format_money_short",
    "format_time",
    "parse_time",
    "to_decimal",
]

#: What a cell shows when the API has no value.
MISSING = "—"


def to_decimal(value: str | int | float | Decimal | None) -> Decimal | None:
    """A money value from the API (a decimal string) as ``Decimal``; ``None`` if unreadable."""
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def format_money(value: str | int | float | Decimal | None, currency: str | None = None) -> str:
    """``format_money("1250", "eur")`` -> ``"EUR 1,250.00"``; no value -> ``"—"``.

    The currency code goes first (ISO 4217 style) because transactions can mix
    currencies and a bare symbol would hide that.
    """
    amount = to_decimal(value)
    if amount is None:
        return MISSING
    text = f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"
    return f"{currency.upper()} {text}" if currency else text


def format_money_by_currency(value: Any) -> str:
    """A ``{"USD": "796.00", "EUR": "10"}`` money map as ``"EUR 10.00, USD 796.00"``;
    empty or unreadable -> ``"—"``.

    >>> format_money_by_currency({"usd": "1250.5"}), format_money_by_currency({})
    ('USD 1,250.50', '—')
    """
    if not isinstance(value, Mapping) or not value:
        return MISSING
    return ", ".join(format_money(v, str(c)) for c, v in sorted(value.items())) or MISSING


def audit_details(what: Mapping[str, Any]) -> list[dict[str, str]]:
    """An audit entry's ``what`` as labelled rows: nested keys joined with a dot, money
    maps (``value_by_currency``) as money, times as UTC, lists comma-separated.

    >>> audit_details({"total": 2, "value_by_currency": {"USD": "796"},
    ...                "selection": {"event_id": "e-1"}, "opened_at": "2026-11-26T17:25:40Z"})
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'field': 'total', 'value': '2'}, {'field': 'value by currency', 'value': 'USD 796.00'},
     {'field': 'selection · event id', 'value': 'e-1'},
     {'field': 'opened at', 'value': '2026-11-26 17:25:40 UTC'}]
    """
    rows: list[dict[str, str]] = []

    def add(label: str, key: str, value: Any) -> None:
        if isinstance(value, Mapping) and value and "currency" in key:
            rows.append({"field": label, "value": format_money_by_currency(value)})
        elif isinstance(value, Mapping) and value:
            for sub, inner in value.items():
                add(f"{label} · {str(sub).replace('_', ' ')}", str(sub), inner)
        elif isinstance(value, list | tuple):
            rows.append({"field": label, "value": ", ".join(str(v) for v in value) or MISSING})
        elif isinstance(value, str) and parse_time(value) is not None and "T" in value:
            rows.append({"field": label, "value": format_time(value)})
        else:
            text = MISSING if value is None or value == {} else str(value)
            rows.append({"field": label, "value": text})

    for key, value in what.items():
        add(str(key).replace("_", " "), str(key), value)
    return rows


def format_money_short(
    value: str | int | float | Decimal | None, currency: str | None = None
) -> str:
    """Money that fits a tile: exact below 10,000, else ``"EUR 15.9k"`` / ``"USD 1.3M"``.

    >>> format_money_short("1250", "eur"), format_money_short("15950.5", "usd")
    ('EUR 1,250.00', 'USD 16.0k')
    """
    amount = to_decimal(value)
    if amount is None or abs(amount) < 10_000:
        return format_money(value, currency)
    for bound, suffix in ((Decimal(10**9), "B"), (Decimal(10**6), "M"), (Decimal(10**3), "k")):
        if abs(amount) >= bound:
            text = f"{amount / bound:,.1f}{suffix}"
            break
    return f"{currency.upper()} {text}" if currency else text


def format_count(value: int | None, unit: str = "") -> str:
    """``format_count(12345, "events")`` -> ``"12,345 events"``."""
    if value is None:
        return MISSING
    return f"{value:,} {unit}".rstrip()


def format_duration_ms(value: float | None) -> str:
    """A duration in milliseconds, in the largest unit that keeps it readable.

    >>> [format_duration_ms(v) for v in (0.4, 350, 1250, 125_000, 7_380_000, 90_000_000)]
    ['0.4 ms', '350 ms', '1.2 s', '2 min 5 s', '2 h 3 min', '1 d 1 h']
    """
    if value is None:
        return MISSING
    sign = "-" if value < 0 else ""
    ms = abs(float(value))
    if ms < 1:
        return f"{sign}{ms:.1f} ms"
    if ms < 1000:
        return f"{sign}{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{sign}{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h"


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from the API as an aware UTC datetime; ``None`` if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the contract says UTC; treat a bare time as UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: str | None) -> str:
    """``"2026-11-26T17:25:40.123Z"`` -> ``"2026-11-26 17:25:40 UTC"``."""
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else MISSING


def format_age(value: str | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was: ``"3 min 2 s ago"``; ``"—"`` if unknown."""
    parsed = parse_time(value)
    if parsed is None:
        return MISSING
    elapsed_ms = ((now or datetime.now(UTC)) - parsed).total_seconds() * 1000
    if elapsed_ms < 0:
        return "in the future (clock skew?)"
    return f"{format_duration_ms(elapsed_ms)} ago"


def at_risk_text(alert: Mapping[str, Any] | None) -> str:
    """An alert's value at risk with its currency: ``"EUR 1,250.00 at risk"``.

    Nothing at risk reads ``"nothing at risk"`` (a duplicate delivery is dropped, not
    acted on); amounts in several currencies say so, since their sum adds unlike money.

    >>> at_risk_text({"value_at_risk": 1250, "currency": "eur"})
    'EUR 1,250.00 at risk'
    >>> at_risk_text({"value_at_risk": 0, "currency": None})
    'nothing at risk'
    """
    alert = alert or {}
    value = to_decimal(alert.get("value_at_risk"))
    if value is None or value == 0:
        return "nothing at risk"
    currency = alert.get("currency")
    if currency == "mixed":
        return f"{format_money(value)} at risk (in several currencies)"
    return f"{format_money(value, str(currency) if currency else None)} at risk"
