"""The ``backupctl`` command line: parse -> call -> render. The only place that exits."""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click

from backupctl import __version__
from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.clock import ahead_by, utc_now
from backupctl.errors import BackupctlError, LockHeldError, PolicyError
from backupctl.log import LEVELS, choose_level, configure, format_exception
from backupctl.redaction import scrub
from backupctl.settings import default_policies, default_state_dir
from backupctl.statefile import use_private_umask

#: every command: its name -> "module:attribute" under backupctl.cli. A command's module
#: is imported only when that command runs, so a cron job pays start-up for its own.
COMMANDS = {
    "backup": "backup_cmd:backup",
    "binlog": "binlog_cmd:binlog",
    "catalog": "catalog_cmd:catalog_group",
    "copy": "copy_cmd:copy",
    "cron": "systemd_cmd:cron",
    "demo": "demo_cmd:demo",
    "drill": "drill_cmd:drill",
    "dr": "dr_cmd:dr_group",
    "key": "key_cmd:key_group",
    "list": "list_cmd:list_backups",
    "metrics": "metrics_cmd:metrics",
    "policy": "policy_cmd:policy_group",
    "prune": "prune_cmd:prune",
    "restore": "restore_cmd:restore",
    "run-due": "run_due_cmd:run_due_command",
    "scheduler": "scheduler_cmd:scheduler",
    "status": "status_cmd:status",
    "systemd": "systemd_cmd:systemd_group",
    "verify": "verify_cmd:verify_command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attribute = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(f"backupctl.cli.{module}"), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--policies",
    "policies",
    type=click.Path(path_type=Path),
    envvar="BACKUPCTL_POLICIES",
    help="Directory of *.yaml policies, or one file.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    envvar="BACKUPCTL_STATE_DIR",
    help="Where the catalog, locks and logs live.",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default=None,
    help="Default: console on a terminal, JSON lines otherwise.",
)
@click.option(
    "--metrics-textfile",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="BACKUPCTL_METRICS_TEXTFILE",
    help="Rewrite this node-exporter textfile (*.prom) after every run.",
)
@click.option(
    "--pushgateway",
    envvar="BACKUPCTL_PUSHGATEWAY",
    metavar="URL",
    help="Push the metrics to this Prometheus Pushgateway after every run.",
)
@click.option(
    "--clock-offset",
    type=float,
    default=0.0,
    envvar="BACKUPCTL_CLOCK_OFFSET",
    hidden=True,
    help="Test hook: run the clock this many seconds ahead (tests move time, never wait).",
)
@click.option("-v", "--verbose", count=True, help="More logging; tracebacks for bugs.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    envvar="BACKUPCTL_QUIET",
    help="Log only warnings and errors, no progress (cron mails only what went wrong).",
)
@click.option(
    "--log-level",
    type=click.Choice(list(LEVELS), case_sensitive=False),
    envvar="BACKUPCTL_LOG_LEVEL",
    default=None,
    help="Lowest level logged (default: info; debug with -v, warning with --quiet).",
)
@click.version_option(__version__, prog_name="backupctl")
@click.pass_context
def cli(
    ctx: click.Context,
    policies: Path | None,
    state_dir: Path | None,
    log_format: str | None,
    metrics_textfile: Path | None,
    pushgateway: str | None,
    clock_offset: float,
    verbose: int,
    quiet: bool,
    log_level: str | None,
) -> None:
    """Backups that prove they restore: MariaDB, Elasticsearch, models, configs."""
    level = choose_level(log_level, verbose, quiet)
    fmt = configure(log_format, verbose, level)  # type: ignore[arg-type]
    use_private_umask()  # what backupctl and its tools create is private (see statefile)
    ctx.obj = AppContext(
        policies_path=policies or default_policies(),
        state_dir=state_dir or default_state_dir(),
        log_format=fmt,
        verbose=verbose,
        metrics_textfile=metrics_textfile,
        pushgateway=pushgateway,
        clock=ahead_by(clock_offset) if clock_offset else utc_now,
    )


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def _wants_json(argv: list[str] | None) -> bool:
    return "--json" in (sys.argv[1:] if argv is None else argv)


def _fail(exc: BackupctlError, as_json: bool = False) -> NoReturn:
    if as_json:
        problems = [scrub(str(p)) for p in getattr(exc, "problems", ())]
        message = f"{len(problems)} problem(s) in the policies" if problems else str(exc)
        render.json_error(scrub(message).splitlines()[0], exc.exit_code, problems)
    if isinstance(exc, PolicyError):
        for problem in exc.problems:
            # the message may quote a value; the file name and field are the operator's
            click.echo(str(dataclasses.replace(problem, message=scrub(problem.message))), err=True)
        files = len({p.file for p in exc.problems})
        click.echo(f"error: {len(exc.problems)} problem(s) in {files} policy file(s)", err=True)
    elif isinstance(exc, LockHeldError):  # not a failure: the next run catches up
        click.echo(f"skipped: {scrub(str(exc))}", err=True)
    else:
        click.echo(f"error: {scrub(str(exc))}", err=True)
    sys.exit(exc.exit_code)


def _echo_undecodable_bytes() -> None:
    """Arguments and file names that are not UTF-8 arrive as lone surrogates
    (surrogateescape): print them back as the bytes they were, as Python does under the
    C locale, instead of failing on them under a UTF-8 one (stdout is strict there)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="surrogateescape")


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps expected errors to exit codes and never shows their traceback."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    _echo_undecodable_bytes()
    verbose = bool(os.environ.get("BACKUPCTL_DEBUG"))
    try:
        cli.main(args=argv, prog_name="backupctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if _wants_json(argv):
            render.json_error(exc.format_message(), exc.exit_code)
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except BackupctlError as exc:
        _fail(exc, _wants_json(argv))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:  # the host said no (a path too long, not writable, disk full)
        where = f": {exc.filename}" if exc.filename else ""
        if _wants_json(argv):
            render.json_error(scrub(f"{exc.strerror or exc}{where}"), 1)
        click.echo(scrub(f"error: {exc.strerror or exc}{where}"), err=True)
        sys.exit(1)
    except Exception as exc:  # a bug: say so plainly, show the traceback only on request
        ctx_verbose = verbose or "-v" in (argv or sys.argv) or "--verbose" in (argv or sys.argv)
        if ctx_verbose:
            click.echo(format_exception(exc), err=True, nl=False)
        message = scrub(f"{type(exc).__name__}: {exc}")
        if _wants_json(argv):
            render.json_error(f"internal error (a bug in backupctl): {message}", 1)
        click.echo(f"internal error (a bug in backupctl): {message}", err=True)
        sys.exit(1)
    sys.exit(0)
