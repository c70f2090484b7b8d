"""structlog set-up: console on a terminal, JSON lines otherwise; logs go to stderr.

Every line passes through ``redact_secrets`` last (``backupctl.redaction``): values of
keys that name a credential become ``***``, and whatever looks like one inside any text
is masked, tracebacks included.
"""

from __future__ import annotations

import logging
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


def default_format() -> LogFormat:
    return "console" if sys.stderr.isatty() else "json"


def configure(fmt: LogFormat | None = None, verbose: int = 0) -> LogFormat:
    """Configure structlog for the process; return the format chosen."""
    fmt = fmt or default_format()
    level = logging.DEBUG if verbose else logging.INFO
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
                colors=sys.stderr.isatty(), exception_formatter=scrubbed_traceback
            ),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    return fmt
