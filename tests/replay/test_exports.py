"""``replay.__all__`` names exactly the public surface, and each name exists."""

from __future__ import annotations

import replay


def test_all_is_honest() -> None:
    public = {name for name in dir(replay) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(replay, name)).__name__ == "module"}
    assert set(replay.__all__) == public - modules
    assert replay.__all__ == sorted(replay.__all__, key=lambda n: (not n.isupper(), n))
