"""Shared fixtures: real mariadbd instances, moto's S3 server, and the CLI as users run it.

Marks: every test under ``integration/`` and ``e2e/`` is ``slow`` (it starts real
servers, runs the CLI in a subprocess, or both), and so are the unit tests marked one by
one that take seconds (fuzzing, property campaigns, real scheduler timing). The fast
loop for development is ``pytest -m "not slow"``; CI runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.s3",
    "tests.support.mariadb",
    "tests.support.cli",
    "tests.support.elasticsearch",
    "tests.support.tinyfs",
]

_SLOW_DIRECTORIES = {"integration", "e2e"}
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(_HERE).parts if item.path.is_relative_to(_HERE) else ()
        if parts and parts[0] in _SLOW_DIRECTORIES:
            item.add_marker(pytest.mark.slow)
