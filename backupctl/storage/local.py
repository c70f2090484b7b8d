"""A repository on a local (or mounted) filesystem: ``file:///path``."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from backupctl.errors import ObjectNotFound, RepositoryError
from backupctl.statefile import open_private, private_dir
from backupctl.storage.base import ObjectInfo, ObjectWriter, Repository
from backupctl.storage.keys import validate_key

PARTIAL_MARK = ".partial-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectWriter(ObjectWriter):
    """Writes to a hidden partial file and renames it into place on commit."""

    def __init__(self, final: Path):
        self._final = final
        private_dir(final.parent)  # objects and directories are the owner's alone: 0600/0700
        self._partial = final.with_name(f"{final.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
        self._fh = open_private(self._partial, "wb", exclusive=True)
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:
            raise RepositoryError(f"cannot write {self._final}: {exc.strerror}") from exc
        self.bytes_written += len(data)

    def commit(self) -> None:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._partial, self._final)
            _fsync_dir(self._final.parent)
        except OSError as exc:
            self.abort()
            raise RepositoryError(f"cannot commit {self._final}: {exc.strerror}") from exc

    def abort(self) -> None:
        if not self._fh.closed:
            # a full disk fails the flush of the buffered rest again; the file is closed all
            # the same, and the caller reports the first error (which names the path)
            with contextlib.suppress(OSError):
                self._fh.close()
        self._partial.unlink(missing_ok=True)


class LocalRepository(Repository):
    """Objects are files under ``root``; a key's segments are directories."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def free_bytes(self) -> int | None:
        """Free space of the filesystem the repository is on (or will be, once created)."""
        where = self.root
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            return shutil.disk_usage(where).free
        except OSError:
            return None

    def open_write(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        try:
            return LocalObjectWriter(self._path(key))
        except OSError as exc:
            raise RepositoryError(f"cannot write to {self.url}: {exc}") from exc

    def iter_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return self.iter_read_from(key, 0, chunk_size)

    def iter_read_from(self, key: str, offset: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        path = self._path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.url}/{key} does not exist") from exc
        except OSError as exc:
            raise RepositoryError(f"cannot read {path}: {exc.strerror}") from exc
        with fh:
            if offset:
                fh.seek(offset)
            while chunk := fh.read(chunk_size):
                yield chunk

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.open_write(key) as writer:
            writer.write(data)
            writer.commit()

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_read(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # walk only the directory the prefix names (its part up to the last "/")
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*validate_key(base_dir).split("/")) if base_dir else self.root
        if not start.is_dir():
            return
        found: list[ObjectInfo] = []
        for dirpath, _dirs, files in os.walk(start):
            rel = Path(dirpath).relative_to(self.root)
            for name in files:
                if PARTIAL_MARK in name:
                    continue
                key = "/".join((*rel.parts, name))
                if not key.startswith(prefix):
                    continue
                try:
                    size = (Path(dirpath) / name).stat().st_size
                except FileNotFoundError:
                    continue  # deleted while we listed: it is gone, so not listed
                found.append(ObjectInfo(key, size))
        yield from sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RepositoryError(f"cannot delete {path}: {exc.strerror}") from exc
        self._prune_empty_dirs(path.parent)

    def abort_incomplete(self, prefix: str) -> int:
        base = self.root.joinpath(*validate_key(prefix.rstrip("/")).split("/"))
        partials = list(base.rglob(f"*{PARTIAL_MARK}*")) if base.is_dir() else []
        for partial in partials:
            partial.unlink(missing_ok=True)
            self._prune_empty_dirs(partial.parent)
        return len(partials)

    def delete_prefix(self, prefix: str) -> int:
        count = super().delete_prefix(prefix)
        # partial files of an interrupted writer are not listed but must go too
        base = self.root.joinpath(*validate_key(prefix.rstrip("/")).split("/"))
        if base.is_dir():
            for partial in base.rglob(f"*{PARTIAL_MARK}*"):
                partial.unlink(missing_ok=True)
                count += 1
            for sub in sorted(base.rglob("*"), reverse=True):
                if sub.is_dir():
                    self._prune_empty_dirs(sub)
            self._prune_empty_dirs(base)
        return count

    def _prune_empty_dirs(self, path: Path) -> None:
        while path != self.root and path.is_relative_to(self.root):
            try:
                path.rmdir()
            except OSError:
                return
            path = path.parent
