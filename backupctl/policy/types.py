"""Field types shared by every policy: durations, schedules, secrets."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    SecretStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from backupctl.cron.expressions import validate_expression
from backupctl.errors import BackupctlError
from backupctl.offline import host_checks

_DURATION_RE = re.compile(r"^\s*(\d{1,12})\s*([smhdw])\s*$")  # 10^12 weeks > timedelta.max
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_SECONDS = 1000 * 366 * 86400  # beyond, timedelta and datetime arithmetic overflow


def parse_duration(value: Any) -> timedelta:
    """Return the timedelta for '30d', '12h', '15m', '90s', '2w'; raise ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION_RE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a duration like 30d, 12h, 15m or 90s, got {value!r}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    if seconds > _MAX_SECONDS:
        raise ValueError(f"a duration must be at most 1000 years, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Return the shortest exact '<n><unit>' form of ``value``."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+[smhdw]$", "examples": ["30d", "1h"]}),
]


def _schedule(value: str) -> str:
    return validate_expression(value)


def _schedule_or_continuous(value: str) -> str:
    return validate_expression(value, allow_continuous=True)


Schedule = Annotated[str, AfterValidator(_schedule)]
ScheduleOrContinuous = Annotated[str, AfterValidator(_schedule_or_continuous)]


class SecretError(BackupctlError):
    """A secret could not be read."""


class PasswordSource(BaseModel):
    """Mixin for a connection with a password from a file, an env var or inline (${ENV})."""

    model_config = ConfigDict(extra="forbid")

    password: SecretStr | None = None
    password_file: Path | None = None
    password_env: str | None = None

    @field_validator("password_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            check_secret_file(value)
        return value

    @field_validator("password_env")
    @classmethod
    def _env_is_set(cls, value: str | None) -> str | None:
        check_env_set(value)
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> PasswordSource:
        given = [n for n in ("password", "password_file", "password_env") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(
                f"give only one of password, password_file, password_env (got {given})"
            )
        return self

    def resolve_password(self) -> str | None:
        """Return the password from its source, or None. Raises SecretError."""
        return resolve_secret(self.password, self.password_file, self.password_env)


def check_env_set(name: str | None) -> None:
    """Raise ValueError when the variable ``name`` is not set (not checked offline)."""
    if name is not None and host_checks() and name not in os.environ:
        raise ValueError(f"environment variable {name} is not set")


def check_secret_file(path: Path) -> None:
    """Raise ValueError when ``path`` is not a readable regular file (not checked
    offline)."""
    if not host_checks():
        return
    if not path.is_file():
        raise ValueError(f"secret file {path} does not exist")
    if not os.access(path, os.R_OK):
        raise ValueError(f"secret file {path} is not readable")


def resolve_secret(inline: SecretStr | None, file: Path | None, env: str | None) -> str | None:
    """Return the secret from whichever source is set. Raises SecretError."""
    if inline is not None:
        return inline.get_secret_value()
    if file is not None:
        try:
            return file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {file}: {exc.strerror}") from exc
    if env is not None:
        if env not in os.environ:
            raise SecretError(f"environment variable {env} is not set")
        return os.environ[env]
    return None
