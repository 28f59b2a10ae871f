"""Pages and view modules reach the control API only through ``dashboards/_data.py``.

``_data.py`` names every route and holds the cache policy; ``_client.py`` is the HTTP
client under it. Any other module of ``dashboards/`` that spells a route or talks to a
client directly bypasses both, so this walk over the package fails on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
#: The modules allowed to know routes and clients.
GATEWAY = {DASHBOARDS / "_data.py", DASHBOARDS / "_client.py"}
ROUTE_PREFIX = "/api/v1"
#: Calls that make or use a client instead of a ``_data`` function.
CLIENT_FUNCTIONS = {"get_client", "client_for", "ControlClient"}
CLIENT_METHODS = {"get_json", "post_json", "get_bytes"}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def problems(source: str, name: str = "<module>") -> list[str]:
    """What in ``source`` bypasses ``_data``: route strings and client calls, by line."""
    found = [
        f"{name}:{n}: names a route ({ROUTE_PREFIX})"
        for n, line in enumerate(source.splitlines(), 1)
        if ROUTE_PREFIX in line
    ]
    for node in ast.walk(ast.parse(source, filename=name)):
        if not isinstance(node, ast.Call):
            continue
        called = _called_name(node)
        if called in CLIENT_FUNCTIONS or (
            called in CLIENT_METHODS and isinstance(node.func, ast.Attribute)
        ):
            found.append(f"{name}:{node.lineno}: calls {called}()")
        # A client reached without a call to it by name: `call(client.get_json, ...)`.
        for arg in node.args:
            if isinstance(arg, ast.Attribute) and arg.attr in CLIENT_METHODS:
                found.append(f"{name}:{node.lineno}: passes {arg.attr} along")
    return found


def dashboard_modules() -> list[Path]:
    return sorted(p for p in DASHBOARDS.rglob("*.py") if p not in GATEWAY)


def test_the_walk_covers_the_pages_and_the_view_modules():
    names = {p.relative_to(DASHBOARDS).as_posix() for p in dashboard_modules()}
    assert "pages/02_Transactions.py" in names
    assert "_session.py" in names and "_home.py" in names and "app.py" in names
    assert not names & {"_data.py", "_client.py"}


def test_only_the_data_module_and_the_client_reach_the_control_api():
    found = [
        problem
        for path in dashboard_modules()
        for problem in problems(path.read_text(encoding="utf-8"), str(path.relative_to(DASHBOARDS)))
    ]
    assert not found, "use a function of dashboards/_data.py instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'rules = call(data.optional, "/api/v1/sla")',
        'st.caption("no `/api/v1/throughput` here")',
        "client = get_client()",
        "body = client_for(url, token).stats()",
        "with ControlClient(url) as c:\n    pass",
        'me = call(client.get_json, "whoami")',
        'client.post_json(path, {"note": None})',
        "pdf = lambda: client.get_bytes(path)",
    ],
)
def test_the_check_catches_each_way_around_the_data_module(source):
    assert problems(source)


def test_the_check_lets_data_functions_through():
    source = (
        "from dashboards import _data as data\n"
        "rules = call(data.optional, data.sla_rules)\n"
        'made = data.request_replay({"event_id": "e1"}, reason="fixed")\n'
    )
    assert problems(source) == []
