"""Tryton's JSON dialect: Decimals, dates and times travel as tagged objects.

``{"__class__": "Decimal", "decimal": "100.00"}`` is ``Decimal("100.00")``;
dates, datetimes, times, timedeltas and bytes are tagged the same way. Money
never passes through a float.
"""

from __future__ import annotations

import base64
import datetime
import json
from decimal import Decimal
from typing import Any

__all__ = ["dumps", "loads"]


def _encode(value: Any) -> Any:
    # datetime is a date subclass: test it first.
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, datetime.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, datetime.time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, datetime.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes | bytearray):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable for Tryton")


def _decode(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "datetime":
        return datetime.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj["hour"],
            obj["minute"],
            obj["second"],
            obj["microsecond"],
        )
    if kind == "date":
        return datetime.date(obj["year"], obj["month"], obj["day"])
    if kind == "time":
        return datetime.time(obj["hour"], obj["minute"], obj["second"], obj["microsecond"])
    if kind == "timedelta":
        return datetime.timedelta(seconds=obj["seconds"])
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def dumps(value: Any) -> str:
    """JSON text in Tryton's dialect."""
    return json.dumps(value, default=_encode, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """Python values from Tryton's JSON dialect."""
    return json.loads(text, object_hook=_decode)
