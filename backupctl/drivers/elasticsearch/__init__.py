"""The ``elasticsearch`` driver. Policies validate today; backups arrive with issue #5."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backupctl.drivers.base import Driver
from backupctl.errors import UnsupportedOperation
from backupctl.policy.elasticsearch import ElasticsearchPolicy

if TYPE_CHECKING:
    from backupctl.jobs import BackupSession


class ElasticsearchDriver(Driver):
    name = "elasticsearch"
    policy_model = ElasticsearchPolicy
    kinds = ("snapshot",)

    def backup(self, kind: str, session: BackupSession) -> dict[str, Any]:
        raise UnsupportedOperation(
            f"policy {self.policy.name}: elasticsearch backups are not implemented yet (issue #5)"
        )
