"""The ``model`` driver. Policies validate today; backups arrive with issue #6."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backupctl.drivers.base import Driver
from backupctl.errors import UnsupportedOperation
from backupctl.policy.model import ModelPolicy

if TYPE_CHECKING:
    from backupctl.jobs import BackupSession


class ModelDriver(Driver):
    name = "model"
    policy_model = ModelPolicy
    kinds = ("version",)

    def backup(self, kind: str, session: BackupSession) -> dict[str, Any]:
        raise UnsupportedOperation(
            f"policy {self.policy.name}: model backups are not implemented yet (issue #6)"
        )
