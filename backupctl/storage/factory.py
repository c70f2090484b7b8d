"""Open a repository from its spec: one registry from URL scheme to backend."""

from __future__ import annotations

from collections.abc import Callable

from backupctl.storage.base import Repository
from backupctl.storage.spec import RepositorySpec


def _local(spec: RepositorySpec) -> Repository:
    from backupctl.storage.local import LocalRepository

    return LocalRepository(spec.location)


def _s3(spec: RepositorySpec) -> Repository:
    from backupctl.storage.s3 import S3Repository

    return S3Repository.from_spec(spec)


BACKENDS: dict[str, Callable[[RepositorySpec], Repository]] = {"file": _local, "s3": _s3}


def open_repository(spec: RepositorySpec | str) -> Repository:
    """Return the backend for ``spec``, wrapped in an EncryptedRepository when the spec has
    ``encryption:``. Raises RepositoryError when it cannot be opened (EncryptionError when
    the key cannot be loaded)."""
    if isinstance(spec, str):
        spec = RepositorySpec(url=spec)
    repo = BACKENDS[spec.scheme](spec)
    if spec.encryption is not None:
        from backupctl.storage.encryption import EncryptedRepository

        return EncryptedRepository(repo, spec.encryption.load_key())
    return repo
