"""Output for humans (tables) and for scripts (--json) on stdout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from backupctl.checks import CheckResult


def human_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain, aligned table (easy to read and to grep)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def checks(results: Sequence[CheckResult]) -> None:
    for result in results:
        mark = click.style("PASS", fg="green") if result.passed else click.style("FAIL", fg="red")
        click.echo(f"{mark}  {result.name}: {result.detail}")
