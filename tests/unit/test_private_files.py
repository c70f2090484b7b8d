"""What backupctl creates for itself is the owner's alone (files 0600, directories 0700)
whatever the umask, in-process (without the CLI's umask 077): state files, the catalog,
journals, locks, the run history, local repository objects. Hooks get the operator's
umask back; passwords for tools live in 0600 memory files."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupctl import statefile
from backupctl.catalog.index import Catalog
from backupctl.drivers.mariadb.restore_plan import recovery_run_dir
from backupctl.history import RunEvent, RunHistory
from backupctl.hooks import run_hook
from backupctl.layout import StateLayout
from backupctl.locks import policy_lock
from backupctl.policy.loader import parse_policy
from backupctl.proc import secret_file
from backupctl.runbook.journal import Journal
from backupctl.runbook.step import StepResult
from backupctl.statefile import (
    inherited_umask,
    locked,
    open_private,
    private_dir,
    use_private_umask,
    write_atomic,
)
from backupctl.storage.local import LocalRepository

UMASKS = [0o000, 0o022]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _not_private(root: Path) -> list[str]:
    wrong = []
    for path in [root, *root.rglob("*")]:
        want = 0o700 if path.is_dir() else 0o600
        if _mode(path) != want:
            wrong.append(f"{path}: {_mode(path):o}")
    return wrong


@pytest.fixture(params=UMASKS, ids=lambda u: f"umask-{u:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_private_dir_makes_every_missing_parent_0700_and_leaves_existing_ones(
    tmp_path: Path, umask: int
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    leaf = existing / "a" / "b" / "c"
    assert private_dir(leaf) == leaf
    assert [_mode(p) for p in (leaf, leaf.parent, leaf.parent.parent)] == [0o700] * 3
    assert _mode(existing) == 0o755  # not ours to change
    assert private_dir(leaf) == leaf  # idempotent


def test_private_dir_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        private_dir(tmp_path / "file" / "sub")


def test_open_private_and_write_atomic_give_0600(tmp_path: Path, umask: int) -> None:
    with open_private(tmp_path / "new") as fh:
        fh.write("x")
    old = tmp_path / "old"
    old.write_text("long old content")
    old.chmod(0o644)
    with open_private(old, "wb") as fh:
        fh.write(b"y")
    assert old.read_bytes() == b"y" and _mode(old) == 0o600  # truncated, and made private
    with pytest.raises(FileExistsError):
        open_private(old, exclusive=True)
    write_atomic(tmp_path / "state.json", "{}")
    assert _mode(tmp_path / "new") == _mode(tmp_path / "state.json") == 0o600
    write_atomic(tmp_path / "textfile.prom", "m 1\n", mode=0o644)  # an explicit exception
    assert _mode(tmp_path / "textfile.prom") == 0o644


def test_state_files_are_private(tmp_path: Path, umask: int) -> None:
    state = tmp_path / "state"
    Catalog(state / "catalog.sqlite")
    with locked(state / "schedule" / "state.lock"):
        pass
    with policy_lock(StateLayout(state), "shop"):
        pass
    Journal(state / "runbooks" / "r1.json", "r1", "restore", "shop", {}, [StepResult("a")]).save()
    now = datetime.now(UTC)
    RunHistory(StateLayout(state)).add(RunEvent("shop", "mariadb", "full", "success", now, now))
    names = {p.name for p in state.rglob("*")}
    assert {"catalog.sqlite", "state.lock", "shop.lock", "r1.json", "runs.json"} <= names
    assert _not_private(state) == []


def test_local_repository_objects_and_directories_are_private(tmp_path: Path, umask: int) -> None:
    repo = LocalRepository(tmp_path / "repo")
    repo.put_bytes("shop/full/20261122T020000Z-49d5ca/manifest.json", b"{}")
    with repo.open_write("shop/full/20261122T020000Z-49d5ca/data.zst") as writer:
        writer.write(b"data")
        writer.commit()
    assert _not_private(tmp_path / "repo") == []


def test_an_existing_repository_root_keeps_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    root.chmod(0o750)  # the operator's choice (a group of readers)
    LocalRepository(root).put_bytes("shop/x", b"1")
    assert _mode(root) == 0o750 and _mode(root / "shop") == 0o700


def test_the_cli_umask_is_private_and_hooks_get_the_operators_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "policies").mkdir()
    path = tmp_path / "policies" / "db.yaml"
    path.write_text(
        "version: 1\nname: db\ndriver: mariadb\nconnection: {socket: /run/x.sock}\n"
        "datadir: /var/lib/mysql\nrepository: file:///tmp/r\n"
    )
    policy, problems = parse_policy(path)
    assert not problems and policy is not None
    monkeypatch.setattr(statefile, "_inherited_umask", None)
    previous = os.umask(0o027)
    try:
        assert use_private_umask() == 0o027
        assert os.umask(0o077) == 0o077  # (reading it sets it: set it back the same)
        assert inherited_umask() == 0o027
        assert use_private_umask() == 0o077 and inherited_umask() == 0o027  # called again
        out = run_hook(policy, "sh -c umask", step="s", env={}, timeout=timedelta(seconds=10))
    finally:
        os.umask(previous)
    assert out.strip() == "0027"


def test_tool_passwords_live_in_0600_memory_files() -> None:
    with secret_file("[client]\npassword=x\n") as (path, fd):
        assert path == f"/dev/fd/{fd}"
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
        assert Path(path).read_text().startswith("[client]")


def test_a_recovery_instance_run_as_another_user_gets_a_run_dir_it_can_reach(
    tmp_path: Path,
) -> None:
    """The state directory is 0700: an instance running as ``mysql`` (root restoring a
    datadir owned by mysql) could not enter it."""
    short = Path(tempfile.mkdtemp(prefix="st-"))  # tmp_path may be too long for a socket
    try:
        own = recovery_run_dir(StateLayout(short / "state"), "r1")
        assert own == (short / "state").absolute() / "recovery" / "r1"
    finally:
        short.rmdir()
    shared = recovery_run_dir(StateLayout(tmp_path / "state"), "r1", shared=True)
    assert shared.parent == Path(tempfile.gettempdir())
    assert shared.name == "backupctl-recovery-r1"
