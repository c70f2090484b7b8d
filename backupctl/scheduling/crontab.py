"""Crontab lines equivalent to the scheduled jobs (for ``/etc/cron.d/backupctl``)."""

from __future__ import annotations

import shlex
from itertools import groupby

from backupctl.scheduling.plan import JobPlan, ScheduledJob


def crontab_lines(
    plan: JobPlan, backupctl: str, global_args: tuple[str, ...] = (), user: str = "root"
) -> list[str]:
    """One ``m h dom mon dow USER COMMAND`` line per job, in /etc/cron.d format.

    Jobs with a timezone follow a ``CRON_TZ=`` line (cronie reads it; Debian's cron
    does not: there run ``run-due`` every minute, which reads timezones itself).
    """
    head = [shlex.quote(backupctl), *(shlex.quote(a) for a in global_args)]
    lines = [
        "# backupctl schedules: copy to /etc/cron.d/backupctl. cron mails what a job prints:",
        "# with --quiet only warnings and errors (and a result line); drop it and append",
        "# '>>/var/log/backupctl.log 2>&1' to keep every log line in a file instead.",
        "# Or replace them all with one line that also catches up after downtime:",
        f"#   * * * * * {user} {' '.join(head)} --log-format json --quiet run-due",
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]

    def zone(job: ScheduledJob) -> str:
        return job.timezone or ""

    for timezone, jobs in groupby(sorted(plan.jobs, key=zone), key=zone):
        if timezone:
            lines.append(f"CRON_TZ={timezone}")
        for job in jobs:
            command = [*head, "--log-format", "json", "--quiet", *job.command]
            lines.append(f"{job.cron} {user} {' '.join(command)}")
    lines += [f"# {c.note}" for c in plan.continuous]
    return lines
