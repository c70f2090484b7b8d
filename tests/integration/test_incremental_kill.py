"""An in-place restore of a full + incremental chain, SIGKILLed while mariabackup applies an
incremental (``apply-incremental-N``): the live server never noticed, ``--resume`` is
refused (the step is not resumable), ``--rollback`` removes what the run left, and the
next restore brings back the chain's last link."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from backupctl.drivers.mariadb.datadir_steps import servers_on
from tests.integration.test_incremental import Chain, _checksums, _write
from tests.support.cli import popen_backupctl
from tests.support.kill import kill_cgroup
from tests.support.mariadb import MariaDBServer

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


class StallingMariabackup:
    """A ``mariabackup`` for ``backup.mariabackup`` that runs the real one, except that
    while armed, its ``at``-th ``--prepare --incremental-dir`` (in order: the run's
    ``apply-incremental-<at>``) is frozen (SIGSTOP) once it says it is applying a delta
    file to the prepared base, and never returns: the moment to SIGKILL the restore.
    ``state()`` says ``frozen``, or ``finished`` (it completed before it could be frozen)
    or ``not-applying`` (it never said so), once that moment came."""

    def __init__(self, directory: Path, at: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "mariabackup"
        self.armed, self.calls = directory / "armed", directory / "incremental-calls"
        self.marker, self.log = directory / "stalled", directory / "stalled.log"
        real = shutil.which("mariabackup")
        assert real is not None
        q = {k: shlex.quote(str(v)) for k, v in vars(self).items()}
        self.path.write_text(
            "#!/bin/sh\n"
            'case "$*" in *--incremental-dir=*)\n'
            f"  echo x >>{q['calls']}\n"
            f'  if [ -e {q["armed"]} ] && [ "$(wc -l <{q["calls"]})" -eq {at} ]; then\n'
            f'    {shlex.quote(real)} "$@" >{q["log"]} 2>&1 &\n'
            "    pid=$!\n"
            "    state=not-applying\n"
            "    for _ in $(seq 3000); do\n"
            f"      if grep -q 'Applying .*\\.delta' {q['log']}; then\n"
            "        kill -STOP $pid\n"
            f"        grep -q 'completed OK' {q['log']} && state=finished || state=frozen\n"
            "        break\n"
            "      fi\n"
            "      sleep 0.01\n"
            "    done\n"
            f"    echo $state $pid >{q['marker']}\n"
            "    exec sleep 600\n"
            "  fi;;\n"
            "esac\n"
            f'exec {shlex.quote(real)} "$@"\n'
        )
        self.path.chmod(0o755)
        self.armed.touch()

    def state(self) -> str | None:
        text = self.marker.read_text() if self.marker.exists() else ""
        return text.split()[0] if text.endswith("\n") else None

    def disarm(self) -> None:
        self.armed.unlink()


def _journal(state_dir: Path) -> dict[str, Any]:
    (path,) = (state_dir / "runbooks").glob("*.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _leftovers(server: MariaDBServer) -> list[str]:
    """What a restore of the datadir leaves beside it: staging, an incremental unpacked
    to apply, the datadir moved aside."""
    parent, name = server.datadir.parent, server.datadir.name
    patterns = (f".{name}.restore-*", f".{name}.incremental-*", f"{name}.aside-*")
    return sorted(p.name for pattern in patterns for p in parent.glob(pattern))


def _restore_killed_applying(chain: Chain, cli: Any, stalling: StallingMariabackup) -> None:
    """Start an in-place restore of ``chain``'s newest backup; SIGKILL it, with what it
    started, while mariabackup is frozen applying an incremental."""
    chain.edit_backup(mariabackup=str(stalling.path))
    args = ["--state-dir", str(cli.state_dir), "--policies", str(chain.policy)]
    proc = popen_backupctl([*args, "restore", "shop", "--yes"])
    deadline = time.monotonic() + 120
    while stalling.state() is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "mariabackup never got to apply the incremental"
        time.sleep(0.02)
    assert stalling.state() == "frozen", stalling.log.read_text()
    kill_cgroup(proc)  # as systemd kills a unit: backupctl and mariabackup with it
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, out + err


@pytest.mark.parametrize("at", [1, 2], ids=lambda n: f"apply-incremental-{n}")
def test_a_restore_killed_applying_an_incremental_is_rolled_back_then_done_again(
    at: int, fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    server = fresh_mariadb
    chain = Chain(server, tmp_path, backupctl)
    chain.backup("full")
    _write(server, "one")
    chain.backup("incremental")
    _write(server, "two")
    chain.backup("incremental")
    # the live data moves on after the last backup: the restore would replace it
    server.sql("INSERT INTO shop.t_two VALUES (3, 'after')", "DELETE FROM shop.orders LIMIT 50")
    before = _checksums(server)
    assert before != chain.checksums[-1]
    pid = server.instance.pid()
    step = f"apply-incremental-{at}"

    stalling = StallingMariabackup(tmp_path / "wrapper", at)
    _restore_killed_applying(chain, backupctl, stalling)
    journal = _journal(backupctl.state_dir)
    statuses = {s["name"]: s["status"] for s in journal["steps"]}
    assert journal["state"] == "running" and statuses[step] == "running", statuses
    assert statuses["prepare"] == "ok" and statuses["stop-services"] == "pending", statuses
    run_id = journal["run_id"]
    name = server.datadir.name
    staged = [f".{name}.incremental-{run_id}", f".{name}.restore-{run_id}"]
    assert _leftovers(server) == staged

    # 1. the live server never noticed: same process, same data
    assert server.instance.pid() == pid and servers_on(server.datadir) == [pid]
    assert _checksums(server) == before

    # a new restore is refused until the interrupted one is finished or undone
    blocked = chain.run("restore", "shop", "--yes")
    assert blocked.code == 2, blocked.output
    assert f"restore {run_id} of policy 'shop' was interrupted" in blocked.stderr
    assert "`backupctl restore shop --rollback`" in blocked.stderr  # a command that works

    # 2. --resume refuses: applying an incremental again over a half-applied one is unsafe
    refused = chain.run("restore", "shop", "--resume")
    assert refused.code == 2, refused.output
    assert "Traceback" not in refused.output
    assert (
        f"error: step {step} was interrupted part-way and cannot be run again safely; "
        "undo the run instead: backupctl restore shop --rollback"
    ) in refused.stderr
    assert _journal(backupctl.state_dir)["steps"] == journal["steps"]  # nothing ran
    assert _leftovers(server) == staged
    assert server.instance.pid() == pid and _checksums(server) == before

    # 3. --rollback removes the staging directory and the unpacked incremental
    rolled = chain.run("restore", "shop", "--rollback", "--json")
    assert rolled.code == 0, rolled.output
    report = json.loads(rolled.stdout)
    assert report["state"] == "rolled-back"
    undone = [s["name"] for s in report["steps"] if s["status"] == "compensated"]
    assert undone == [
        "check-backup",
        "fetch-extract",
        "prepare",
        *(f"apply-incremental-{n}" for n in range(1, at + 1)),
    ]
    assert _leftovers(server) == []
    assert server.instance.pid() == pid and _checksums(server) == before
    nothing = chain.run("restore", "shop", "--resume")
    assert nothing.code == 2 and "no interrupted restore of policy 'shop'" in nothing.stderr

    # ... and a new restore brings back the data of the chain's last link
    stalling.disarm()
    restored = chain.run("restore", "shop", "--yes", "--json")
    assert restored.code == 0, restored.output
    report = json.loads(restored.stdout)
    assert report["state"] == "completed"
    assert report["backup"]["backup_id"] == chain.manifests[-1]["backup_id"]
    assert _checksums(server) == chain.checksums[-1]
    assert _leftovers(server) == [f"{name}.aside-{report['run_id']}"]  # kept, as always
