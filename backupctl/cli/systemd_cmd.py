"""``backupctl systemd generate`` and ``backupctl cron``: the schedules for the host's
own scheduler, one unit pair (or crontab line) per job."""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path

import click
from click.core import ParameterSource

from backupctl.cli.context import AppContext
from backupctl.errors import UsageError
from backupctl.policy.stack import load_stacks
from backupctl.policy.types import parse_duration
from backupctl.scheduling.crontab import crontab_lines
from backupctl.scheduling.plan import plan_jobs
from backupctl.scheduling.systemd import UnitOptions, generate_units, unit_name, write_units
from backupctl.settings import SYSTEM_STATE


def _executable(given: str | None) -> str:
    """``given``, else the ``backupctl`` beside this interpreter, else the one on PATH."""
    if given:
        return given
    beside = Path(sys.executable).parent / "backupctl"
    if beside.is_file():
        return str(beside.absolute())
    found = shutil.which("backupctl")
    if found is None:
        raise UsageError("cannot tell where backupctl is installed: give --backupctl PATH")
    return str(Path(found).absolute())


def _given(name: str) -> bool:
    """True when the global option ``name`` was given (flag or environment variable)."""
    source = click.get_current_context().find_root().get_parameter_source(name)
    return source not in (ParameterSource.DEFAULT, None)


def _global_args(app: AppContext) -> tuple[str, ...]:
    """``--policies``/``--state-dir`` as given to this command (not when defaulted), so
    the scheduled runs read the same policies and state."""
    args: list[str] = []
    if _given("policies"):
        args += ["--policies", str(app.policies_path.absolute())]
    if _given("state_dir"):
        args += ["--state-dir", str(app.state_dir.absolute())]
    return tuple(args)


def _unit_state_dir(app: AppContext) -> Path:
    """The state directory the units use: as given, else root's default (units run as
    root, whoever generates them)."""
    return app.state_dir.absolute() if _given("state_dir") else SYSTEM_STATE


def _delay(text: str | None) -> timedelta | None:
    if text is None or text.strip() in ("0", "0s"):
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--randomized-delay") from None


@click.group("systemd")
def systemd_group() -> None:
    """systemd units for the scheduled jobs."""


@systemd_group.command("generate")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Directory.")
@click.option(
    "--randomized-delay", default=None, help="RandomizedDelaySec= of every timer, e.g. 15m."
)
@click.option("--backupctl", "executable", default=None, help="backupctl path in ExecStart=.")
@click.pass_obj
def generate(
    app: AppContext, output: Path, randomized_delay: str | None, executable: str | None
) -> None:
    """Write a .service (oneshot backup) and a .timer (OnCalendar from the cron
    expression, Persistent=true) per scheduled job into OUTPUT."""
    policies, stacks = app.policies(), load_stacks(app.stacks_path)
    plan = plan_jobs(policies, stacks=stacks)
    options = UnitOptions(
        backupctl=_executable(executable),
        state_dir=_unit_state_dir(app),
        global_args=_global_args(app),
        randomized_delay=_delay(randomized_delay),
    )
    by_name = {p.name: p for p in policies}
    units = generate_units(plan, by_name, options, {s.name: s for s in stacks})
    write_units(units, output)
    click.echo(f"wrote {len(units)} unit(s) for {len(plan.jobs)} job(s) to {output}")
    for job in plan.jobs:
        click.echo(f"  {unit_name(job)}.service/.timer: {job.describe()}")
    if plan.jobs:
        timers = " ".join(f"{unit_name(job)}.timer" for job in plan.jobs)
        click.echo("install them with:")
        click.echo(
            f"  cp {output}/backupctl-*.service {output}/backupctl-*.timer /etc/systemd/system/"
        )
        click.echo(f"  systemctl daemon-reload && systemctl enable --now {timers}")
    for schedule in plan.continuous:
        click.echo(f"note: {schedule.note}")


@click.command("cron")
@click.option("--backupctl", "executable", default=None, help="backupctl path in each line.")
@click.option("--user", default="root", show_default=True, help="User column of /etc/cron.d.")
@click.pass_obj
def cron(app: AppContext, executable: str | None, user: str) -> None:
    """Print crontab lines (/etc/cron.d format) equivalent to the scheduled jobs."""
    plan = plan_jobs(app.policies(), stacks=load_stacks(app.stacks_path))
    for line in crontab_lines(plan, _executable(executable), _global_args(app), user):
        click.echo(line)
