"""Repositories: where backups, manifests and reports are kept."""

from backupctl.storage.base import ObjectInfo, ObjectWriter, Repository
from backupctl.storage.factory import open_repository
from backupctl.storage.spec import RepositorySpec

__all__ = ["ObjectInfo", "ObjectWriter", "Repository", "RepositorySpec", "open_repository"]
