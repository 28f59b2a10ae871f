"""PII masking and secret redaction, applied before anything is stored or logged.

Masking is by field name, recursively, so a canonical payload can be stored as it
is after one call. Masked values keep just enough shape for an operator to tell
two records apart (the e-mail domain, the last digits of a phone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "mask_email", "mask_payload", "redact_secrets"]

REDACTED = "[REDACTED]"

_SECRET_KEYS = re.compile(
    r"(password|passwd|secret|token|api[_-]?key|authorization|signature|session|cookie)",
    re.IGNORECASE,
)
_EMAIL_KEYS = re.compile(r"e[-_]?mail", re.IGNORECASE)
_PHONE_KEYS = re.compile(r"(phone|mobile|fax)", re.IGNORECASE)
_NAME_KEYS = {
    "contact_name",
    "first_name",
    "last_name",
    "firstname",
    "lastname",
    "full_name",
    "person_name",
    "requester_name",
}
_STREET_KEYS = re.compile(r"(street|address_line|postal|zip)", re.IGNORECASE)
# The local part takes every character RFC 5322 allows unquoted.
_LOCAL = "A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
_EMAIL = re.compile(rf"[{_LOCAL}]+@([A-Za-z0-9.-]+\.[A-Za-z]{{2,}})")
_LOCAL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-"
)
_DOMAIN = re.compile(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def mask_email(value: str) -> str:
    """``jane.doe@acme.com`` → ``j***@acme.com``."""
    match = _EMAIL.fullmatch(value.strip())
    if not match:
        return "***"
    return f"{value.strip()[0]}***@{match.group(1)}"


def _mask_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return f"***{digits[-2:]}" if len(digits) >= 4 else "***"


def _mask_name(value: str) -> str:
    return " ".join(f"{part[0]}." for part in value.split() if part) or "***"


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return mask_payload(value)
    if isinstance(value, list):
        return [_mask_value(key, item) for item in value]
    if value is None or not isinstance(value, str):
        return value
    if _SECRET_KEYS.search(key):
        return REDACTED
    if _EMAIL_KEYS.search(key):
        return mask_email(value)
    if _PHONE_KEYS.search(key):
        return _mask_phone(value)
    if key.lower() in _NAME_KEYS:
        return _mask_name(value)
    if _STREET_KEYS.search(key):
        return "***"
    # Free text can carry an e-mail address anywhere.
    return _mask_emails_in(value)


def _mask_emails_in(text: str) -> str:
    """Every e-mail address in free text masked, in time linear in the text.

    The same matches as ``_EMAIL.sub``, found from each ``@`` instead: the regex
    rescans a long run of letters from every start position (quadratic: a 300 KB
    payload field took minutes), while each ``@`` here looks back only to the
    previous one and forward only to its domain's end.
    """
    if "@" not in text:
        return text
    out: list[str] = []
    done = 0
    at = text.find("@")
    while at != -1:
        start = at
        while start > done and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        domain = _DOMAIN.match(text, at + 1) if start < at else None
        if domain is None:
            at = text.find("@", at + 1)
            continue
        out.append(text[done:start])
        out.append(mask_email(text[start : domain.end()]))
        done = domain.end()
        at = text.find("@", done)
    out.append(text[done:])
    return "".join(out)


def mask_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` with PII masked and secrets redacted.

    >>> mask_payload({"email": "jane@acme.com", "api_key": "sk_live_1", "amount": 10})
    {'email': 'j***@acme.com', 'api_key': '[REDACTED]', 'amount': 10}
    """
    return {key: _mask_value(key, value) for key, value in payload.items()}


def redact_secrets(text: str, secrets: list[str]) -> str:
    """Replace every known secret value in ``text`` (a log line, an error message)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
