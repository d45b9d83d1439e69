"""`dsdeploy --version` prints the package version from its metadata (pyproject.toml's version)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_version_flag_prints_the_package_version() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"dsdeploy {metadata.version('dsdeploy')}\n"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert r.stdout == f"dsdeploy {project['version']}\n"  # dsdeploy 0.1.0
    assert r.stderr == ""
