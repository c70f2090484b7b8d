"""Hooks get their context in the environment, a timeout, and their output logged."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from backupctl.hooks import HookFailed, run_hook
from backupctl.policy.loader import parse_policy


@pytest.fixture
def policy(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "policies").mkdir()
    (tmp_path / "hooks").mkdir()
    (tmp_path / "secret").write_text("pw\n")
    path = tmp_path / "policies" / "db.yaml"
    path.write_text(
        "version: 1\nname: db\ndriver: mariadb\n"
        f"connection: {{socket: /run/x.sock, password_file: {tmp_path / 'secret'}}}\n"
        "datadir: /var/lib/mysql\nrepository: file:///tmp/r\n"
    )
    parsed, problems = parse_policy(path)
    assert not problems
    return parsed


def _hook(tmp_path: Path, body: str) -> str:
    script = tmp_path / "hooks" / "h.sh"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return "hooks/h.sh"  # relative: resolved beside policies/


def test_hook_gets_context_and_its_output_is_returned(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    command = _hook(tmp_path, 'echo "$BACKUPCTL_POLICY $BACKUPCTL_STEP $BACKUPCTL_BACKUP_ID $1"')
    out = run_hook(
        policy,
        command + " arg1",
        step="stop-services",
        env={"BACKUPCTL_BACKUP_ID": "20261101T000000Z-aaaaaa"},
        timeout=timedelta(seconds=10),
    )
    assert out.strip() == "db stop-services 20261101T000000Z-aaaaaa arg1"


def test_failing_hook_names_itself_and_its_output(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    command = _hook(tmp_path, 'echo "service busy"; exit 4')
    with pytest.raises(HookFailed, match=r"hooks/h.sh' exited 4: service busy"):
        run_hook(policy, command, step="s", env={}, timeout=timedelta(seconds=10))


def test_hook_timeout(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    command = _hook(tmp_path, "sleep 30 &\nsleep 30")  # a child that keeps the output open
    started = time.monotonic()
    with pytest.raises(HookFailed, match="timed out"):
        run_hook(policy, command, step="s", env={}, timeout=timedelta(seconds=1))
    assert time.monotonic() - started < 10


def test_missing_hook(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HookFailed, match="could not start"):
        run_hook(policy, "hooks/nope.sh", step="s", env={}, timeout=timedelta(seconds=5))
