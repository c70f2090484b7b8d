"""Snapshot repositories: registration rules and where snapshots are kept.

An ``fs`` repository keeps its snapshots under its ``location`` (which must lie under
one of the ``path_repo`` roots, like ``path.repo``), in the double's own format (not
Elasticsearch's blob layout): ``fake-es-repository.json`` lists the finished snapshots,
``snapshots/<uuid>/<index>.json`` holds each index's settings, mappings, aliases and
documents. Registering a repository on a location that already holds snapshots (after
deleting the index, or in a restarted double) makes them visible again, as in
Elasticsearch. Other types (``s3``, ``gcs``, ``azure``, ``url``, ``source``) are accepted as
opaque and kept in memory, keyed by type and settings, for the life of the double.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import EsError, repository_error, validation_failed
from .values import flatten, nest, new_uuid

CATALOG = "fake-es-repository.json"
OPAQUE_TYPES = {"s3", "gcs", "azure", "url", "source"}
_JAVA_IO_ERRORS = {
    errno.EACCES: "access_denied_exception",
    errno.EPERM: "access_denied_exception",
    errno.EROFS: "file_system_exception",
    errno.ENOTDIR: "not_directory_exception",
    errno.ENOENT: "no_such_file_exception",
}


class Store(Protocol):
    def read_catalog(self) -> dict[str, Any] | None: ...
    def write_catalog(self, catalog: dict[str, Any]) -> None: ...
    def write_index(self, snapshot_uuid: str, index: str, payload: dict[str, Any]) -> None: ...
    def read_index(self, snapshot_uuid: str, index: str) -> dict[str, Any] | None: ...
    def delete_snapshot(self, snapshot_uuid: str) -> None: ...
    def check_writable(self) -> None: ...


class FsStore:
    """Snapshots as JSON files under a directory; writes are atomic (rename)."""

    def __init__(self, root: Path, writable: Callable[[Path], bool]) -> None:
        self.root = root
        self._writable = writable

    def _write(self, path: Path, data: Any) -> None:
        if not self._writable(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(json.dumps(data, separators=(",", ":")))
        os.replace(temp, path)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            loaded: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return loaded

    def read_catalog(self) -> dict[str, Any] | None:
        return self._read(self.root / CATALOG)

    def write_catalog(self, catalog: dict[str, Any]) -> None:
        self._write(self.root / CATALOG, catalog)

    def _index_file(self, snapshot_uuid: str, index: str) -> Path:
        return self.root / "snapshots" / snapshot_uuid / f"{index}.json"

    def write_index(self, snapshot_uuid: str, index: str, payload: dict[str, Any]) -> None:
        self._write(self._index_file(snapshot_uuid, index), payload)

    def read_index(self, snapshot_uuid: str, index: str) -> dict[str, Any] | None:
        return self._read(self._index_file(snapshot_uuid, index))

    def delete_snapshot(self, snapshot_uuid: str) -> None:
        shutil.rmtree(self.root / "snapshots" / snapshot_uuid, ignore_errors=True)

    def check_writable(self) -> None:
        """What verification does: create the location, write a blob and remove it."""
        probe = self.root / f"tests-{new_uuid()}" / "master.dat"
        self._write(probe, {"seed": probe.parent.name})
        shutil.rmtree(probe.parent, ignore_errors=True)


class MemoryStore:
    """Opaque repositories (s3, gcs, ...): the same data, kept in a dict."""

    def __init__(self) -> None:
        self.catalog: dict[str, Any] | None = None
        self.indices: dict[tuple[str, str], dict[str, Any]] = {}

    def read_catalog(self) -> dict[str, Any] | None:
        return json.loads(json.dumps(self.catalog)) if self.catalog is not None else None

    def write_catalog(self, catalog: dict[str, Any]) -> None:
        self.catalog = json.loads(json.dumps(catalog))

    def write_index(self, snapshot_uuid: str, index: str, payload: dict[str, Any]) -> None:
        self.indices[(snapshot_uuid, index)] = json.loads(json.dumps(payload))

    def read_index(self, snapshot_uuid: str, index: str) -> dict[str, Any] | None:
        return self.indices.get((snapshot_uuid, index))

    def delete_snapshot(self, snapshot_uuid: str) -> None:
        for key in [k for k in self.indices if k[0] == snapshot_uuid]:
            del self.indices[key]

    def check_writable(self) -> None:
        return None


@dataclass
class Repository:
    name: str
    type: str
    settings: dict[str, Any]
    store: Store

    def catalog(self) -> dict[str, Any]:
        return self.store.read_catalog() or {"uuid": None, "snapshots": {}}

    def render(self) -> dict[str, Any]:
        uuid = self.catalog().get("uuid") or "_na_"
        return {"type": self.type, "uuid": uuid, "settings": nest(self.settings)}


def creation_failed(name: str, message: str) -> EsError:
    return EsError(
        500,
        "repository_exception",
        f"[{name}] failed to create repository",
        caused_by=repository_error(name, message),
    )


def fs_location(name: str, settings: dict[str, Any], path_repo: list[Path]) -> Path:
    """``FsRepository``: the location, which must lie under a ``path.repo`` root."""
    location = settings.get("location")
    if not location:
        raise creation_failed(name, "missing location")
    if not path_repo:
        raise creation_failed(
            name,
            f"location [{location}] doesn't match any of the locations specified by "
            "path.repo because this setting is empty",
        )
    path = Path(location)
    if not path.is_absolute():
        path = path_repo[0] / path
    path = Path(os.path.normpath(path))
    for root in path_repo:
        if path == root or root in path.parents:
            return path
    raise creation_failed(
        name, f"location [{location}] doesn't match any of the locations specified by path.repo"
    )


def verification_error(name: str, error: OSError) -> EsError:
    java_type = _JAVA_IO_ERRORS.get(error.errno or 0, "file_system_exception")
    cause = EsError(500, java_type, str(error.filename or error))
    return EsError(
        500,
        "repository_verification_exception",
        f"[{name}] path  is not accessible on master node",
        caused_by=cause,
    )


def parse_registration(body: Any) -> tuple[str, dict[str, Any]]:
    """The ``type`` and flat string ``settings`` of a PUT _snapshot/{repo} body (other
    fields are ignored, as Elasticsearch does)."""
    if not isinstance(body, dict) or not body.get("type"):
        raise validation_failed("type is missing")
    settings = body.get("settings") or {}
    if not isinstance(settings, dict):
        raise EsError(400, "parse_exception", "malformed settings section")
    return str(body["type"]), flatten(settings)
