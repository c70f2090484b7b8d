"""The ``config-git`` driver. Policies validate today; backups arrive with issue #6."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backupctl.drivers.base import Driver
from backupctl.errors import UnsupportedOperation
from backupctl.policy.config_git import ConfigGitPolicy

if TYPE_CHECKING:
    from backupctl.jobs import BackupSession


class ConfigGitDriver(Driver):
    name = "config-git"
    policy_model = ConfigGitPolicy
    kinds = ("commit",)

    def backup(self, kind: str, session: BackupSession) -> dict[str, Any]:
        raise UnsupportedOperation(
            f"policy {self.policy.name}: config-git backups are not implemented yet (issue #6)"
        )
