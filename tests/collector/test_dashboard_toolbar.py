"""The dashboard hides Streamlit's developer toolbar (and its Deploy button) however it is
started: by ``interlock up`` (command-line flags) or by ``streamlit run`` from the
repository root (``.streamlit/config.toml``). Streamlit resolves both, in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from collector.host import dashboard_command

ROOT = Path(__file__).resolve().parents[2]

# Resolve Streamlit's configuration as `streamlit run` would: config.toml in the working
# directory, then the flags given as JSON in argv[1]; print the options that matter.
_RESOLVE = """
import json, sys
from streamlit import config
flags = json.loads(sys.argv[1])
unknown = sorted(k for k in flags if k not in config._config_options_template)
config.get_config_options(force_reparse=True, options_from_flags=flags)
print(json.dumps({"unknown": unknown, "toolbarMode": config.get_option("client.toolbarMode")}))
"""


def _resolve(flags: dict[str, str], cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _RESOLVE, json.dumps(flags)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _flags(command: list[str]) -> dict[str, str]:
    args = command[command.index("run") + 2 :]
    return {args[i].removeprefix("--"): args[i + 1] for i in range(0, len(args), 2)}


def test_the_runtime_starts_streamlit_with_the_toolbar_minimal(tmp_path: Path) -> None:
    command = dashboard_command(ROOT / "dashboards" / "app.py", 8599)
    flags = _flags(command)
    assert flags["client.toolbarMode"] == "minimal"
    # Every flag is a Streamlit option, and Streamlit applies it (from a directory with no
    # config.toml of its own).
    assert _resolve(flags, tmp_path) == {"unknown": [], "toolbarMode": "minimal"}


def test_streamlit_run_from_the_repository_root_hides_it_too() -> None:
    assert _resolve({}, ROOT)["toolbarMode"] == "minimal"
