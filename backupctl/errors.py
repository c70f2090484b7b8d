"""One error tree for the whole package.

Library code raises these; only ``backupctl.cli`` turns them into exit codes
(0 success, 1 operation failed, 2 bad usage / invalid policy, 3 verification failed,
75 skipped because another run holds the lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BackupctlError(Exception):
    """Base of every expected failure. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(BackupctlError):
    """The command was called wrongly (unknown policy, bad argument)."""

    exit_code = 2


@dataclass(frozen=True)
class PolicyProblem:
    """One problem found in a policy file, pointing at its line and field."""

    file: str
    line: int | None
    field: str
    message: str
    #: the field's path in the document (names and list indexes), when known
    loc: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}{field} {self.message}"


class PolicyError(BackupctlError):
    """One or more policies are invalid; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[PolicyProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RepositoryError(BackupctlError):
    """The repository could not be read or written."""


class ObjectNotFound(RepositoryError):
    """A key does not exist in the repository."""


class LockHeldError(BackupctlError):
    """Another run holds the lock for this policy: skipped, try later (EX_TEMPFAIL; the
    generated units count it as success)."""

    exit_code = 75


class BackupFailed(BackupctlError):
    """A backup did not complete; nothing was recorded as complete."""


class IncompleteBackup(BackupFailed):
    """The backup ended but is not restorable (e.g. a PARTIAL snapshot): it is recorded
    as failed, with ``details`` (the driver's manifest details, a typed document or a
    mapping), so it is listed as such and never chosen for restore."""

    def __init__(self, message: str, details: Any):
        super().__init__(message)
        self.details = details


class NothingChanged(BackupctlError):
    """The source has not changed since its last backup: nothing was stored (exit 0)."""

    exit_code = 0


class ServerUnreachable(BackupFailed):
    """The server did not answer (down, restarting, network): worth retrying."""


class ToolError(BackupctlError):
    """An external tool (mariabackup, mbstream, mariadbd) failed or is missing."""


class NoSpace(BackupctlError):
    """Not enough room for what an operation would write: refused before it began."""


class NotFoundError(BackupctlError):
    """A policy, backup or report that was asked for does not exist."""

    exit_code = 2


class VerificationFailed(BackupctlError):
    """Stored data does not match what the manifest promises, or a check failed."""

    exit_code = 3


class EncryptionError(RepositoryError):
    """The encryption key is missing or invalid, an object was encrypted with another key,
    or an object is encrypted where the repository is not (or the other way round)."""


class TamperedObject(EncryptionError, VerificationFailed):
    """An encrypted object failed authentication: corrupted, truncated, reordered or
    swapped for another object."""

    exit_code = 3


class UnsupportedOperation(BackupctlError):
    """The driver does not support this operation (yet)."""

    exit_code = 2
