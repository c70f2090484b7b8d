"""constraints.txt pins what a server runs (scripts/install.sh); the test virtualenv is
built with the same pins (scripts/bootstrap.sh), so CI tests exactly those versions."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt: {line!r} is not pinned with =="
            pins[_name(name)] = pinned.strip()
    return pins


def test_every_runtime_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    missing = {_name(r) for r in project["dependencies"]} - set(_pins())
    assert not missing, f"constraints.txt does not pin {sorted(missing)}"


def test_the_tests_run_on_the_pinned_versions() -> None:
    drift = {}
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            drift[name] = (pinned, installed)
    assert not drift, f"pinned vs installed: {drift}; rebuild .venv (scripts/bootstrap.sh)"
