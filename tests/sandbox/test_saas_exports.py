"""Each SaaS package's ``__all__`` names exactly what it exports."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


@pytest.mark.parametrize(
    "name",
    ["adapters.crm", "adapters.support", "adapters.sandbox.salesforce", "adapters.sandbox.zendesk"],
)
def test_all_is_honest(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, ModuleType)
    }
    assert exported == public
    for item in exported:
        assert getattr(module, item).__doc__ or item.isupper(), f"{name}.{item} has no docstring"
