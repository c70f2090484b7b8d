"""Drill reports, kept in the policy's repository (so history survives the host) and in
the state directory (a local copy): ``<policy>/drills/<drill_id>/report.json|.md|.html``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from backupctl.drills.html import to_html
from backupctl.drills.report import DrillReport, to_markdown
from backupctl.errors import NotFoundError, RepositoryError
from backupctl.layout import StateLayout
from backupctl.statefile import private_dir, write_atomic
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.storage.keys import BACKUP_ID_RE

log = structlog.get_logger()
DRILLS = "drills"
FORMATS = ("json", "md", "html")


def report_key(policy: str, drill_id: str, fmt: str) -> str:
    return keys.join(policy, DRILLS, drill_id, f"report.{fmt}")


def local_dir(layout: StateLayout, drill_id: str) -> Path:
    return layout.drill(drill_id)


def render(report: DrillReport, history: list[DrillReport]) -> dict[str, str]:
    """The report in every format (``history``: earlier drills of the policy, oldest first)."""
    return {"json": report.to_json(), "md": to_markdown(report), "html": to_html(report, history)}


def save(
    report: DrillReport,
    repo: Repository | None,
    layout: StateLayout,
    copies: Sequence[Repository] = (),
) -> tuple[Path, list[str]]:
    """Write the report locally and (when it can) into the repository and each of the
    policy's ``copies`` (a new host finds the measurements there: its restore plans project
    from them). Returns the local HTML path and the problems met writing to repositories
    (the local copy is always written)."""
    history = history_of(repo, layout, report.policy)
    history = [r for r in history if r.drill_id != report.drill_id]
    texts = render(report, [*history, report])
    directory = local_dir(layout, report.drill_id)
    private_dir(directory)
    for fmt, text in texts.items():
        write_atomic(directory / f"report.{fmt}", text)
    problems = []
    for target in [*([repo] if repo is not None else []), *copies]:
        try:
            for fmt, text in texts.items():
                target.put_bytes(report_key(report.policy, report.drill_id, fmt), text.encode())
        except RepositoryError as exc:
            log.error("could not store the drill report", repository=target.url, error=str(exc))
            problems.append(str(exc))
    return directory / "report.html", problems


def _usable(data: Any, drill_id: str, policy: str | None = None) -> DrillReport | None:
    """``data`` as the report of ``drill_id`` (and ``policy`` when given), or None: a report
    from a repository someone else can write is data to check, not to trust."""
    report = DrillReport.read(data)
    if report is None or report.drill_id != drill_id:
        return None
    return report if policy is None or report.policy == policy else None


def _local_reports(layout: StateLayout) -> dict[str, DrillReport]:
    found = {}
    for path in sorted(layout.drills.glob("*/report.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            continue
        if (report := _usable(data, path.parent.name)) is not None:
            found[report.drill_id] = report
    return found


def _repo_reports(repo: Repository, policy: str) -> dict[str, DrillReport]:
    found = {}
    for info in repo.list(f"{policy}/{DRILLS}/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[3] == "report.json" and BACKUP_ID_RE.match(parts[2]):
            try:
                data = json.loads(repo.get_bytes(info.key))
            except (RepositoryError, ValueError, RecursionError) as exc:
                log.warning("unreadable drill report", key=info.key, error=str(exc))
                continue
            if (report := _usable(data, parts[2], policy)) is not None:
                found[parts[2]] = report
            else:
                log.warning("ignoring a drill report that is not one", key=info.key)
    return found


def history_of(repo: Repository | None, layout: StateLayout, policy: str) -> list[DrillReport]:
    """Every drill report of ``policy``, repository and local copies merged, oldest first."""
    found = {k: v for k, v in _local_reports(layout).items() if v.policy == policy}
    if repo is not None:
        try:
            found.update(_repo_reports(repo, policy))
        except RepositoryError as exc:
            log.warning("cannot list drill reports in the repository", error=str(exc))
    return [found[k] for k in sorted(found)]


def find_report(
    drill_id: str, layout: StateLayout, repos: list[tuple[str, Repository]], fmt: str
) -> str:
    """The text of a drill's report in ``fmt``, from the local copy or a policy's
    repository (``repos``: policy name and repository). Raises NotFoundError."""
    local = local_dir(layout, drill_id) / f"report.{fmt}"
    if BACKUP_ID_RE.match(drill_id) and local.is_file():
        return local.read_text()
    if BACKUP_ID_RE.match(drill_id):
        for policy, repo in repos:
            try:
                return repo.get_bytes(report_key(policy, drill_id, fmt)).decode()
            except RepositoryError:
                continue
    raise NotFoundError(f"no drill report {drill_id!r}")
