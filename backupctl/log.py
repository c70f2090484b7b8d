"""structlog set-up: console on a terminal, JSON lines otherwise; logs go to stderr."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["console", "json"]


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
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    return fmt
