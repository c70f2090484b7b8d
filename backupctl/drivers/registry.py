"""Driver classes by name, imported when first used (the table is ``policy.registry``)."""

from __future__ import annotations

import importlib
from typing import Any

from backupctl.drivers.base import Driver
from backupctl.policy.common import PolicyBase
from backupctl.policy.registry import driver_target

AnyDriver = Driver[Any, Any]


def driver_class(name: str) -> type[AnyDriver]:
    """Return the driver class called ``name``. Raises UsageError listing the known ones."""
    module, attribute = driver_target(name).split(":")
    cls: type[AnyDriver] = getattr(importlib.import_module(module), attribute)
    return cls


def driver_for(policy: PolicyBase) -> AnyDriver:
    """Return a driver instance bound to ``policy``."""
    return driver_class(policy.driver)(policy)
