"""What a restore is asked to do: one typed options model per driver.

Each driver's policy module declares a subclass of ``RestoreOptions`` (``MariaDBPolicy``
names it in ``restore_options``). The command line builds ``backupctl restore``'s flags
from these models (``flags()``), the restore journal stores them (``model_dump``) and
``--resume`` reads them back (``model_validate``): adding a restore option is adding a
field to the driver's model and using it in the driver's steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Self, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from backupctl.errors import UsageError
from backupctl.timefmt import parse_time

#: where the command line's flag of a field is kept (``json_schema_extra``)
_FLAG = "flag"


def option(flag: str, description: str, default: Any = None) -> Any:
    """A restore option given on the command line as ``flag`` (``default`` when not)."""
    return Field(default, description=description, json_schema_extra={_FLAG: flag})


def _moment(value: Any) -> Any:
    """A time typed by an operator (local unless it has an offset) or stored by a journal."""
    if isinstance(value, str):
        try:
            return parse_time(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    return value


def _names(value: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]`` (comma-separated on the command line)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()] or None
    return value


#: a moment: "2026-11-21 14:02:00" (local), "2026-11-21T14:02:00+01:00"
Moment = Annotated[datetime, BeforeValidator(_moment)]
#: names or patterns, comma-separated on the command line
NameList = Annotated[list[str], BeforeValidator(_names)]


@dataclass(frozen=True)
class RestoreFlag:
    """One command-line flag of a restore option: ``--to-time`` for field ``to_time``."""

    field: str
    flag: str
    description: str
    is_switch: bool  # a boolean flag (``--previous``), not one taking a value
    is_path: bool


class RestoreOptions(BaseModel):
    """Options every restore takes. ``backup_id`` is the ``BACKUP_ID`` argument: a backup
    id, or the name the driver knows a backup by (a snapshot, a model version)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backup_id: str | None = Field(
        None, description="the backup to restore (default: the newest complete one)"
    )

    @property
    def in_place(self) -> bool:
        """True when the restore replaces live data (the operator must confirm it)."""
        return True

    def target(self) -> Path | None:
        """The directory the restore writes into instead of the live data (None: in place)."""
        return None

    def where(self) -> str:
        """Where the restore writes, for the plan: "in place: …" or "into DIR (…)"."""
        return "in place: the live data is replaced"

    def given(self) -> list[str]:
        """The flags of the options that were given (for messages)."""
        return [f.flag for f in self.flags() if getattr(self, f.field)]

    @classmethod
    def flags(cls) -> list[RestoreFlag]:
        """The command-line flags of this model's options (``backup_id`` is an argument)."""
        found = []
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra
            if not isinstance(extra, dict) or _FLAG not in extra:
                continue
            types = {info.annotation, *get_args(info.annotation)}
            found.append(
                RestoreFlag(
                    name,
                    str(extra[_FLAG]),
                    info.description or "",
                    is_switch=bool in types,
                    is_path=Path in types,
                )
            )
        return found

    @classmethod
    def from_command_line(cls, values: dict[str, Any]) -> Self:
        """The options from what the command line gave. Raises UsageError naming the flag."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise UsageError(_explain(cls, exc)) from None


def _explain(model: type[RestoreOptions], exc: ValidationError) -> str:
    flags = {f.field: f.flag for f in model.flags()}
    messages = []
    for error in exc.errors():
        where = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        if where and where[0] in flags:
            message = f"{flags[where[0]]}: {message}"
        elif where and where[0] == "backup_id":
            message = f"BACKUP_ID: {message}"
        messages.append(message)
    return "; ".join(messages)
