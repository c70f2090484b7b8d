"""Progress for long transfers: a live bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import structlog

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Advance]]

LOG_EVERY_SECONDS = 30.0


@contextmanager
def no_progress(description: str, total: int | None) -> Iterator[Advance]:
    yield lambda n: None


@contextmanager
def terminal_progress(description: str, total: int | None) -> Iterator[Advance]:
    """A rich progress bar on stderr showing bytes, rate and elapsed time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def logged_progress(description: str, total: int | None) -> Iterator[Advance]:
    """Log a ``progress`` event every 30 s (for cron and systemd, where logs are JSON)."""
    log = structlog.get_logger()
    state = {"bytes": 0, "last": time.monotonic(), "start": time.monotonic()}

    def advance(n: int) -> None:
        state["bytes"] += n
        now = time.monotonic()
        if now - state["last"] >= LOG_EVERY_SECONDS:
            state["last"] = now
            rate = state["bytes"] / max(now - state["start"], 1e-6)
            log.info(
                "progress",
                task=description,
                bytes=int(state["bytes"]),
                total_estimate=total,
                bytes_per_second=int(rate),
            )

    yield advance


def choose_progress(log_format: str, quiet: bool = False) -> ProgressFactory:
    """A terminal bar when stderr is a terminal and logs are for humans, else log lines;
    nothing when ``quiet`` (``--quiet``: only what went wrong)."""
    if quiet:
        return no_progress
    if log_format == "console" and sys.stderr.isatty():
        return terminal_progress
    return logged_progress
