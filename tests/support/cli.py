"""Run ``backupctl`` as a user does: a separate process, real exit codes and output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_backupctl(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> CliResult:
    """Run ``python -m backupctl ARGS`` and return its exit code and output."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "backupctl", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def popen_backupctl(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``backupctl`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "backupctl", *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def backupctl(tmp_path: Path) -> Callable[..., CliResult]:
    """Call ``backupctl(*args, policies=PATH)`` with a private state dir and JSON logs."""
    state = tmp_path / "state"

    def call(
        *args: str,
        policies: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> CliResult:
        head = ["--state-dir", str(state), "--log-format", "json"]
        if policies is not None:
            head += ["--policies", str(policies)]
        return run_backupctl([*head, *args], env=env, timeout=timeout)

    call.state_dir = state  # type: ignore[attr-defined]
    return call
