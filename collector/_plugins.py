"""Finding plug-ins and ordering them.

``interlock up`` installs every plug-in registered under the entry-point group
``interlock.plugins`` (``pyproject.toml``: ``[project.entry-points."interlock.plugins"]``);
tests and benches pass an explicit list to the same builder. A plug-in names the
plug-ins it comes ``after``; that order is soft (a name that is not installed is
skipped) but a cycle or a name used twice is a configuration error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points

from pydantic import BaseModel

from tracing import ConfigError

from ._contracts import Plugin

__all__ = ["ENTRY_POINT_GROUP", "discover", "ordered", "plugin_sections"]

ENTRY_POINT_GROUP = "interlock.plugins"


def discover(group: str = ENTRY_POINT_GROUP) -> list[Plugin]:
    """The plug-ins installed in this environment, in install order."""
    found: list[Plugin] = []
    for point in entry_points(group=group):
        try:
            value = point.load()
        except Exception as exc:
            raise ConfigError(f"plugins.{point.name}", f"cannot be loaded: {exc}") from exc
        plugin = value() if isinstance(value, type) else value
        if not isinstance(plugin, Plugin):
            raise ConfigError(f"plugins.{point.name}", f"{point.value} is not an Interlock plug-in")
        found.append(plugin)
    return ordered(found)


def ordered(plugins: Iterable[Plugin]) -> list[Plugin]:
    """``plugins`` so that each comes after the ones it names that are present;
    otherwise in the order given (sorted by name for entry points)."""
    by_name: dict[str, Plugin] = {}
    for plugin in sorted(plugins, key=lambda p: p.name):
        if plugin.name in by_name:
            raise ConfigError(f"plugins.{plugin.name}", "is registered twice")
        by_name[plugin.name] = plugin
    out: list[Plugin] = []
    state: dict[str, str] = {}

    def visit(name: str, path: Sequence[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ConfigError(f"plugins.{name}", f"order is a cycle: {' -> '.join([*path, name])}")
        state[name] = "visiting"
        for before in by_name[name].after:
            if before in by_name:
                visit(before, [*path, name])
        state[name] = "done"
        out.append(by_name[name])

    for name in by_name:
        visit(name, [])
    return out


def plugin_sections(plugins: Iterable[Plugin]) -> Mapping[str, type[BaseModel]]:
    """Every settings section the plug-ins own; two owners of one is an error."""
    sections: dict[str, type[BaseModel]] = {}
    owner: dict[str, str] = {}
    for plugin in plugins:
        for name, model in plugin.sections.items():
            if name in sections:
                raise ConfigError(name, f"is claimed by {owner[name]} and {plugin.name}")
            sections[name] = model
            owner[name] = plugin.name
    return sections
