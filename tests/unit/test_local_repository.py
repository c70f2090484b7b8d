"""The file:// repository: atomic commits, listing, safe keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupctl.errors import ObjectNotFound, RepositoryError
from backupctl.storage.factory import open_repository
from backupctl.storage.local import LocalRepository


def test_objects_are_invisible_until_committed(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    writer = repo.open_write("p/full/id/data")
    writer.write(b"hello")
    assert not repo.exists("p/full/id/data")
    assert list(repo.list()) == []
    writer.commit()
    assert repo.get_bytes("p/full/id/data") == b"hello"
    assert [(i.key, i.size) for i in repo.list("p/")] == [("p/full/id/data", 5)]


def test_an_exception_aborts_and_leaves_no_file(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    with pytest.raises(RuntimeError), repo.open_write("a/b") as writer:
        writer.write(b"partial")
        raise RuntimeError("boom")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_delete_prefix_removes_committed_and_partial_files(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    repo.put_bytes("p/full/x/one", b"1")
    writer = repo.open_write("p/full/x/two")
    writer.write(b"half")  # left behind as by a killed process
    repo.put_bytes("p/full/y/keep", b"k")
    assert repo.delete_prefix("p/full/x") == 2
    assert not (tmp_path / "p" / "full" / "x").exists()
    assert repo.exists("p/full/y/keep")


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs", "a//b", "a/./b", ""])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    repo = LocalRepository(tmp_path)
    with pytest.raises(RepositoryError, match="unsafe"):
        repo.put_bytes(key, b"x")


def test_missing_object(tmp_path: Path) -> None:
    repo = open_repository(f"file://{tmp_path}")
    with pytest.raises(ObjectNotFound, match="does not exist"):
        repo.get_bytes("nope")
    repo.delete("nope")  # deleting a missing key is fine
