"""Output for humans (tables) and for scripts (--json) on stdout."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import click

from backupctl.checks import CheckResult


def human_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


_emitted = False


def emit_json(data: Any) -> None:
    emit_json_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def emit_json_text(text: str) -> None:
    """Print a JSON document already serialised (e.g. a stored report)."""
    global _emitted
    _emitted = True
    click.echo(text.rstrip("\n"))


def json_error(message: str, exit_code: int, problems: Sequence[str] = ()) -> None:
    """A failed ``--json`` command that printed no result prints this object on stdout
    (scripts read one JSON document whatever happened): what went wrong and the exit
    code; nothing when the command already printed its JSON (e.g. a failed verify's)."""
    if _emitted:
        return
    outcome = {0: "ok", 2: "usage", 3: "verification", 75: "skipped"}.get(exit_code, "failed")
    error: dict[str, Any] = {"message": message, "exit_code": exit_code, "outcome": outcome}
    if problems:
        error["problems"] = list(problems)
    emit_json({"error": error})


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    colours: Mapping[str, str] | None = None,
) -> None:
    """Print a plain, aligned table (easy to read and to grep). Cells equal to a key of
    ``colours`` are shown in that colour (click strips it when not on a terminal)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    colours = colours or {}
    for n, row in enumerate(cells):
        padded = [
            click.style(c.ljust(w), fg=colours[c]) if n and c in colours else c.ljust(w)
            for c, w in zip(row, widths, strict=True)
        ]
        click.echo("  ".join(padded).rstrip())


def checks(results: Sequence[CheckResult]) -> None:
    for result in results:
        mark = click.style("PASS", fg="green") if result.passed else click.style("FAIL", fg="red")
        click.echo(f"{mark}  {result.name}: {result.detail}")
