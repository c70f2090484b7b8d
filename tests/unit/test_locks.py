"""Per-policy locks: a second run fails at once; a killed holder never blocks the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backupctl.errors import LockHeldError
from backupctl.layout import StateLayout
from backupctl.locks import policy_lock

HOLD = """
import sys, time
from pathlib import Path
from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
with policy_lock(StateLayout(Path(sys.argv[1])), "db"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_holder_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    held = pytest.raises(LockHeldError, match=f"pid {os.getpid()}")
    with policy_lock(StateLayout(tmp_path), "db"), held, policy_lock(StateLayout(tmp_path), "db"):
        pass
    with policy_lock(StateLayout(tmp_path), "db"):  # released after the block
        pass


def test_lock_of_a_killed_process_does_not_block(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(LockHeldError), policy_lock(StateLayout(tmp_path), "db"):
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            with policy_lock(StateLayout(tmp_path), "db"):
                break
        except LockHeldError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
