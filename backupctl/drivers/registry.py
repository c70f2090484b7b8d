"""The one place that maps a driver name to its class."""

from __future__ import annotations

from backupctl.drivers.base import Driver
from backupctl.drivers.config_git import ConfigGitDriver
from backupctl.drivers.elasticsearch import ElasticsearchDriver
from backupctl.drivers.mariadb.full import MariaDBDriver
from backupctl.drivers.models import ModelDriver
from backupctl.errors import UsageError
from backupctl.policy.common import PolicyBase

DRIVERS: dict[str, type[Driver]] = {
    cls.name: cls for cls in (MariaDBDriver, ElasticsearchDriver, ModelDriver, ConfigGitDriver)
}


def driver_class(name: str) -> type[Driver]:
    """Return the driver class called ``name``. Raises UsageError listing the known ones."""
    try:
        return DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise UsageError(f"unknown driver {name!r} (known drivers: {known})") from None


def driver_for(policy: PolicyBase) -> Driver:
    """Return a driver instance bound to ``policy``."""
    return driver_class(policy.driver)(policy)
