"""structlog set-up: console on a terminal, JSON lines otherwise; logs go to stderr.

Every line passes through ``redact_secrets`` last (``backupctl.redaction``): values of
keys that name a credential become ``***``, and whatever looks like one inside any text
is masked, tracebacks included.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from io import StringIO
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, WrappedLogger

from backupctl.redaction import redact_item, scrub

LogFormat = Literal["console", "json"]


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask credentials in the event (keys and text, see ``scrub``).
    Put it after ``format_exc_info`` so rendered tracebacks are masked too."""
    return {key: redact_item(key, value) for key, value in event_dict.items()}


def scrubbed_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """ConsoleRenderer exception formatter: the plain traceback, credentials masked."""
    buffer = StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(scrub(buffer.getvalue()))


def format_exception(exc: BaseException) -> str:
    """``exc``'s traceback as text with credentials masked (for ``-v`` on a bug)."""
    return scrub("".join(traceback.format_exception(exc)))


#: the names ``--log-level`` takes
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_threshold = logging.INFO


def default_format() -> LogFormat:
    return "console" if sys.stderr.isatty() else "json"


def use_colors() -> bool:
    """Colours on a terminal, unless NO_COLOR is set to anything (https://no-color.org)."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def quiet() -> bool:
    """True when routine (info) lines are not logged: ``--quiet`` or a higher level."""
    return _threshold > logging.INFO


def choose_level(level: str | None = None, verbose: int = 0, quiet: bool = False) -> int:
    """The threshold: ``level`` (``--log-level``) if given, else debug with ``-v``,
    warning with ``--quiet`` (cron then mails only what went wrong), else info."""
    if level is not None:
        return LEVELS[level.lower()]
    if verbose:
        return logging.DEBUG
    return logging.WARNING if quiet else logging.INFO


def configure(
    fmt: LogFormat | None = None, verbose: int = 0, level: int | None = None
) -> LogFormat:
    """Configure structlog for the process; return the format chosen. ``level``: the
    threshold (default: debug with ``verbose``, else info)."""
    global _threshold
    fmt = fmt or default_format()
    if level is None:
        level = logging.DEBUG if verbose else logging.INFO
    _threshold = level
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        processors += [
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [
            redact_secrets,
            structlog.dev.ConsoleRenderer(
                colors=use_colors(), exception_formatter=scrubbed_traceback
            ),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    return fmt
