"""The error the sandbox answers as Salesforce's REST API does."""

from __future__ import annotations

from typing import Any

__all__ = ["SalesforceError"]


class SalesforceError(Exception):
    """An error the REST API answers as ``[{"message","errorCode","fields"}]``."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]
