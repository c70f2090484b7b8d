"""``backupctl status [--json]``: the daily check; exit 1 when an objective is breached."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.drills.report import seconds_text
from backupctl.errors import BackupctlError
from backupctl.observability.status import PolicyStatus
from backupctl.units import human_bytes, human_duration

VERDICTS = {"ok": "OK", "warning": "WARNING", "breach": "BREACH"}
COLOURS = {"OK": "green", "WARNING": "yellow", "BREACH": "red"}


class ObjectiveBreached(BackupctlError):
    """At least one policy breaches an objective (the daily check fails)."""


@click.command("status")
@click.argument("policies", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print every policy's status as JSON.")
@click.pass_obj
def status(app: AppContext, policies: tuple[str, ...], as_json: bool) -> None:
    """Each policy's last runs, recoverability and last drill, with a verdict.

    Exit 1 when an objective is breached (the newest recoverable point older than the
    RPO, a drill's RTO over the objective, nothing recoverable): a daily check and a
    Nagios-style probe.
    """
    for name in policies:
        app.policy(name)  # an unknown name is an error, not an empty report
    statuses = [s for s in app.statuses() if not policies or s.policy in policies]
    if as_json:
        render.emit_json([s.to_dict() for s in statuses])
    else:
        _print(statuses)
    breached = [s.policy for s in statuses if s.verdict == "breach"]
    if breached:
        raise ObjectiveBreached(f"objectives breached: {', '.join(breached)}")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _age(status: PolicyStatus) -> str:
    age = status.point_age
    text = _duration(age) if age is not None else "none"
    rpo = status.rpo_objective
    return f"{text} / {_duration(rpo)}" if rpo is not None else text


def _duration(value: timedelta) -> str:
    return human_duration(value.total_seconds())


def _drill(status: PolicyStatus) -> str:
    drill = status.last_drill
    if drill is None:
        return "never"
    when = (drill.finished_at or "")[:10]
    verdict = "passed" if drill.passed else "FAILED"
    rto, rpo = drill.rto_seconds, drill.rpo_seconds
    return f"{when} {verdict} (RTO {seconds_text(rto)}, RPO {seconds_text(rpo)})"


def _print(statuses: list[PolicyStatus]) -> None:
    rows = []
    for s in statuses:
        success = s.last_success
        next_run = _when(s.next_run[1]) if s.next_run else "-"
        rows.append(
            [
                s.policy,
                VERDICTS[s.verdict],
                _when(success.last_success if success else None),
                _age(s),
                next_run,
                human_bytes(s.repository_bytes),
                _drill(s),
            ]
        )
    headers = ["POLICY", "VERDICT", "LAST SUCCESS", "POINT AGE / RPO", "NEXT RUN", "STORED"]
    render.table([*headers, "LAST DRILL"], rows, COLOURS)
    details = [line for s in statuses for line in _details(s)]
    if details:
        click.echo("")
    for line in details:
        click.echo(line)


def _details(s: PolicyStatus) -> list[str]:
    """The window, the last failure and every problem of one policy."""
    lines = []
    window = s.window
    if window is not None:
        gap = f" (the chain breaks: {window.gap})" if window.gap else ""
        lines.append(
            f"{s.policy}: recoverable from {_when(window.earliest)} to {_when(window.latest)}{gap}"
        )
    failure = s.last_failure
    if failure is not None:
        lines.append(
            f"{s.policy}: last failure {_when(failure.last_failure)} ({failure.kind}): "
            f"{failure.last_failure_reason}"
        )
    for problem in s.problems:
        label = VERDICTS[problem.severity]
        lines.append(f"{s.policy}: {click.style(label, fg=COLOURS[label])}: {problem.message}")
    return lines
