"""A tool that outlives a killed backupctl keeps the policy locked: the lock file's
descriptor is shared with the tools a locked run starts (mariabackup, mbstream,
mariadb-binlog, the replaying client), so the flock stays held while one of them still
works on the policy's files, and a ``--resume`` (or any run of the policy) is refused with
exit 75, naming the gone backupctl, instead of starting a second ``mariabackup --prepare``
on the same directory. ``setpriv --pdeathsig`` already kills the tools themselves; this
holds for what escapes it (a wrapper's background process, a host without setpriv)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backupctl.errors import LockHeldError
from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
from tests.integration.test_incremental import Chain
from tests.support.cli import popen_backupctl
from tests.support.mariadb import MariaDBServer

HOLDER = """
import os, signal, subprocess, sys
from pathlib import Path
from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
from backupctl.proc import lock_fds
with policy_lock(StateLayout(Path(sys.argv[1])), "shop", "restore"):
    quiet = subprocess.DEVNULL
    tool = subprocess.Popen(["sleep", "600"], pass_fds=lock_fds(), stdout=quiet, stderr=quiet)
    print(tool.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _gone(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_tool_left_by_a_killed_run_holds_the_lock_until_it_ends(tmp_path: Path) -> None:
    holder = subprocess.run(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert holder.returncode == -signal.SIGKILL, holder.stderr
    tool = int(holder.stdout)
    layout = StateLayout(tmp_path)
    try:
        with pytest.raises(LockHeldError) as refused, policy_lock(layout, "shop"):
            pass
        message = str(refused.value)
        assert "another run of policy 'shop' is in progress (restore by pid" in message
        assert "is gone, a tool it started still holds the lock" in message
    finally:
        _gone(tool)
    with policy_lock(layout, "shop"):  # the tool ended: the lock is free again
        pass


def _orphaning_mariabackup(directory: Path) -> tuple[Path, Path]:
    """A ``mariabackup`` whose ``--prepare`` leaves a background process working on (it
    sleeps) and stalls: what a prepare that escaped its parent's death looks like."""
    directory.mkdir(parents=True, exist_ok=True)
    path, started = directory / "mariabackup", directory / "prepare-started"
    real = shutil.which("mariabackup")
    assert real is not None
    path.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--prepare*)\n'
        f"  sleep 600 </dev/null >/dev/null 2>&1 &\n"
        f"  echo $! >{shlex.quote(str(started))}\n"
        "  exec sleep 600;;\n"
        "esac\n"
        f'exec {shlex.quote(real)} "$@"\n'
    )
    path.chmod(0o755)
    return path, started


@pytest.mark.mariadb
def test_resume_is_refused_while_a_killed_restores_prepare_still_works(
    fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    chain = Chain(fresh_mariadb, tmp_path, backupctl)
    chain.backup("full")
    wrapper, started = _orphaning_mariabackup(tmp_path / "wrapper")
    chain.edit_backup(mariabackup=str(wrapper))
    args = ["--state-dir", str(backupctl.state_dir), "--policies", str(chain.policy)]
    proc = popen_backupctl([*args, "restore", "shop", "--yes"])
    deadline = time.monotonic() + 120
    while not started.exists() or not started.read_text().endswith("\n"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the restore never got to prepare"
        time.sleep(0.02)
    orphan = int(started.read_text())
    proc.kill()  # kill -9 of backupctl alone, as from a shell
    proc.communicate()
    try:
        refused = chain.run("restore", "shop", "--resume")
        assert refused.code == 75, refused.output
        assert "Traceback" not in refused.output
        assert f"restore by pid {proc.pid}" in refused.stderr
        assert f"pid {proc.pid} is gone, a tool it started still holds the lock" in refused.stderr
    finally:
        _gone(orphan)
    # once it ended, the interrupted restore can be taken up again (here: undone)
    rolled = chain.run("restore", "shop", "--rollback")
    assert rolled.code == 0, rolled.output
