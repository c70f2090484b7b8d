"""The one table of drivers: a driver's name, its policy model and where its class lives.

Adding a driver adds one line here. Policy models are imported at once (loading policies
needs them, and they are light); driver classes only when a command uses one
(``backupctl.drivers.registry``), so a cron run of one policy does not pay for the
imports of every driver (the Elasticsearch client alone takes ~0.15 s).
"""

from __future__ import annotations

from backupctl.errors import UsageError
from backupctl.policy.common import PolicyBase
from backupctl.policy.config_git import ConfigGitPolicy
from backupctl.policy.elasticsearch import ElasticsearchPolicy
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.policy.model import ModelPolicy

#: driver name -> (policy model, "module:Class" of the driver)
DRIVERS: dict[str, tuple[type[PolicyBase], str]] = {
    "mariadb": (MariaDBPolicy, "backupctl.drivers.mariadb.driver:MariaDBDriver"),
    "elasticsearch": (
        ElasticsearchPolicy,
        "backupctl.drivers.elasticsearch.driver:ElasticsearchDriver",
    ),
    "model": (ModelPolicy, "backupctl.drivers.models.driver:ModelDriver"),
    "config-git": (ConfigGitPolicy, "backupctl.drivers.config_git.driver:ConfigGitDriver"),
}

POLICY_MODELS: dict[str, type[PolicyBase]] = {name: entry[0] for name, entry in DRIVERS.items()}


def unknown_driver(name: str) -> UsageError:
    known = ", ".join(sorted(DRIVERS))
    return UsageError(f"unknown driver {name!r} (known drivers: {known})")


def policy_model(name: str) -> type[PolicyBase]:
    """The policy model of driver ``name``. Raises UsageError listing the known ones."""
    try:
        return POLICY_MODELS[name]
    except KeyError:
        raise unknown_driver(name) from None


def driver_target(name: str) -> str:
    """``module:Class`` of driver ``name``. Raises UsageError listing the known ones."""
    try:
        return DRIVERS[name][1]
    except KeyError:
        raise unknown_driver(name) from None
