"""The one place that maps a driver name to its policy model and its class.

Policy models are imported at once (loading policies needs them, and they are light);
driver classes only when a command uses one, so a cron run of one policy does not pay
for the imports of every driver (the Elasticsearch client alone takes ~0.15 s).
"""

from __future__ import annotations

import importlib

from backupctl.drivers.base import Driver
from backupctl.errors import UsageError
from backupctl.policy.common import PolicyBase
from backupctl.policy.config_git import ConfigGitPolicy
from backupctl.policy.elasticsearch import ElasticsearchPolicy
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.policy.model import ModelPolicy

#: driver name -> (policy model, "module:Class" of the driver)
_DRIVERS: dict[str, tuple[type[PolicyBase], str]] = {
    "mariadb": (MariaDBPolicy, "backupctl.drivers.mariadb.full:MariaDBDriver"),
    "elasticsearch": (ElasticsearchPolicy, "backupctl.drivers.elasticsearch:ElasticsearchDriver"),
    "model": (ModelPolicy, "backupctl.drivers.models:ModelDriver"),
    "config-git": (ConfigGitPolicy, "backupctl.drivers.config_git:ConfigGitDriver"),
}

POLICY_MODELS: dict[str, type[PolicyBase]] = {name: v[0] for name, v in _DRIVERS.items()}


def _unknown(name: str) -> UsageError:
    known = ", ".join(sorted(_DRIVERS))
    return UsageError(f"unknown driver {name!r} (known drivers: {known})")


def policy_model(name: str) -> type[PolicyBase]:
    """The policy model of driver ``name``. Raises UsageError listing the known ones."""
    try:
        return POLICY_MODELS[name]
    except KeyError:
        raise _unknown(name) from None


def driver_class(name: str) -> type[Driver]:
    """Return the driver class called ``name``. Raises UsageError listing the known ones."""
    try:
        _model, target = _DRIVERS[name]
    except KeyError:
        raise _unknown(name) from None
    module, attribute = target.split(":")
    cls: type[Driver] = getattr(importlib.import_module(module), attribute)
    return cls


def driver_for(policy: PolicyBase) -> Driver:
    """Return a driver instance bound to ``policy``."""
    return driver_class(policy.driver)(policy)
