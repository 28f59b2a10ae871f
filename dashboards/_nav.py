"""Which pages the app shows: every ``pages/*.py`` file, sorted by name.

Adding a page is dropping a file in ``dashboards/pages/``; its title is the
module-level ``TITLE = "..."`` in the file, else its file name without the number;
``MIN_ROLE = "approver"`` hides it from weaker roles (the API enforces the same).
Files are parsed, not imported, so a broken page cannot break the navigation.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PAGES_DIR", "PageSpec", "discover_pages", "min_role_of", "title_of", "url_path_for"]

PAGES_DIR = Path(__file__).parent / "pages"

_NUMBER_PREFIX = re.compile(r"^\d+[_\- ]*")


@dataclass(frozen=True, slots=True)
class PageSpec:
    """One page of the app: its file, its title and its URL path."""

    path: Path
    title: str
    url_path: str
    #: The weakest role the navigation shows this page to (``MIN_ROLE = "..."``).
    min_role: str = "viewer"


def url_path_for(path: Path) -> str:
    """``02_Transactions.py`` -> ``Transactions`` (what links like ``?cid=`` point at)."""
    return _NUMBER_PREFIX.sub("", path.stem) or path.stem


def _constant(path: Path, name: str) -> str | None:
    """The non-empty string a page assigns to ``name`` at module level, if any."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if (
            isinstance(target, ast.Name)
            and target.id == name
            and isinstance(value, ast.Constant)
            and isinstance(value.value, str)
            and value.value.strip()
        ):
            return value.value.strip()
    return None


def title_of(path: Path) -> str:
    """The page's ``TITLE`` constant, or its file name: ``01_Dead_letters.py`` -> "Dead letters"."""
    return _constant(path, "TITLE") or url_path_for(path).replace("_", " ").strip() or path.stem


def min_role_of(path: Path) -> str:
    """The page's ``MIN_ROLE`` constant (who sees it in the navigation), else ``viewer``."""
    return _constant(path, "MIN_ROLE") or "viewer"


def discover_pages(pages_dir: Path = PAGES_DIR) -> list[PageSpec]:
    """Every ``*.py`` page in ``pages_dir`` (not ``_private.py``), sorted by file name."""
    files = sorted(p for p in pages_dir.glob("*.py") if not p.name.startswith("_"))
    return [
        PageSpec(path=p, title=title_of(p), url_path=url_path_for(p), min_role=min_role_of(p))
        for p in files
    ]
