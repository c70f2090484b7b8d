"""Whether policies are checked against this host (secret files, environment variables,
certificates) or offline: ``policy validate --offline`` lints policies in CI, where the
production secrets are not and must not be, and checks everything else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_offline: ContextVar[bool] = ContextVar("backupctl_offline", default=False)


@contextmanager
def offline() -> Iterator[None]:
    """Within the block, what only the target host has is not checked."""
    token = _offline.set(True)
    try:
        yield
    finally:
        _offline.reset(token)


def host_checks() -> bool:
    """True unless inside ``offline()``: check that secrets and host files are there."""
    return not _offline.get()
