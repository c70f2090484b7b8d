"""Drill reports, kept in the policy's repository (so history survives the host) and in
the state directory (a local copy): ``<policy>/drills/<drill_id>/report.json|.md|.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import structlog

from backupctl.drills.html import to_html
from backupctl.drills.report import to_markdown
from backupctl.errors import NotFoundError, RepositoryError
from backupctl.statefile import private_dir, write_atomic
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.storage.keys import BACKUP_ID_RE

log = structlog.get_logger()
DRILLS = "drills"
FORMATS = ("json", "md", "html")


def report_key(policy: str, drill_id: str, fmt: str) -> str:
    return keys.join(policy, DRILLS, drill_id, f"report.{fmt}")


def local_dir(state_dir: Path, drill_id: str) -> Path:
    return state_dir / DRILLS / drill_id


def render(report: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, str]:
    """The report in every format (``history``: earlier drills of the policy, oldest first)."""
    return {
        "json": json.dumps(report, indent=2, default=str) + "\n",
        "md": to_markdown(report),
        "html": to_html(report, history),
    }


def save(
    report: dict[str, Any], repo: Repository | None, state_dir: Path
) -> tuple[Path, list[str]]:
    """Write the report locally and (when it can) into the repository. Returns the local HTML
    path and the problems met writing to the repository (the local copy is always written)."""
    history = history_of(repo, state_dir, report["policy"])
    history = [r for r in history if r.get("drill_id") != report["drill_id"]]
    texts = render(report, [*history, report])
    directory = local_dir(state_dir, report["drill_id"])
    private_dir(directory)
    for fmt, text in texts.items():
        write_atomic(directory / f"report.{fmt}", text)
    problems = []
    if repo is not None:
        try:
            for fmt, text in texts.items():
                repo.put_bytes(report_key(report["policy"], report["drill_id"], fmt), text.encode())
        except RepositoryError as exc:
            log.error("could not store the drill report in the repository", error=str(exc))
            problems.append(str(exc))
    return directory / "report.html", problems


#: fields every reader of past reports (drill list, status, metrics, the HTML history)
#: relies on, with the types they must have
_FIELDS: dict[str, tuple[type, ...]] = {
    "drill_id": (str,),
    "policy": (str,),
    "passed": (bool,),
    "rpo_seconds": (int, float, type(None)),
    "rto_seconds": (int, float, type(None)),
    "backup_id": (str, type(None)),
    "reason": (str, type(None)),
    "finished_at": (str, type(None)),
}


def _usable(data: Any, drill_id: str | None = None, policy: str | None = None) -> bool:
    """True when ``data`` reads as a report (of ``drill_id`` and ``policy`` when given): a
    report from a repository someone else can write is data to check, not to trust."""
    if not isinstance(data, dict):
        return False
    for name, types in _FIELDS.items():
        value = data.get(name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return False
    if not BACKUP_ID_RE.match(data["drill_id"]):
        return False
    return (drill_id is None or data["drill_id"] == drill_id) and (
        policy is None or data["policy"] == policy
    )


def _local_reports(state_dir: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((state_dir / DRILLS).glob("*/report.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            continue
        if _usable(data, path.parent.name):
            found[str(data.get("drill_id"))] = data
    return found


def _repo_reports(repo: Repository, policy: str) -> dict[str, dict[str, Any]]:
    found = {}
    for info in repo.list(f"{policy}/{DRILLS}/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[3] == "report.json" and BACKUP_ID_RE.match(parts[2]):
            try:
                data = json.loads(repo.get_bytes(info.key))
            except (RepositoryError, ValueError, RecursionError) as exc:
                log.warning("unreadable drill report", key=info.key, error=str(exc))
                continue
            if _usable(data, parts[2], policy):
                found[parts[2]] = data
            else:
                log.warning("ignoring a drill report that is not one", key=info.key)
    return found


def history_of(repo: Repository | None, state_dir: Path, policy: str) -> list[dict[str, Any]]:
    """Every drill report of ``policy``, repository and local copies merged, oldest first."""
    found = {k: v for k, v in _local_reports(state_dir).items() if v.get("policy") == policy}
    if repo is not None:
        try:
            found.update(_repo_reports(repo, policy))
        except RepositoryError as exc:
            log.warning("cannot list drill reports in the repository", error=str(exc))
    return [found[k] for k in sorted(found)]


def find_report(
    drill_id: str, state_dir: Path, repos: list[tuple[str, Repository]], fmt: str
) -> str:
    """The text of a drill's report in ``fmt``, from the local copy or a policy's
    repository (``repos``: policy name and repository). Raises NotFoundError."""
    local = local_dir(state_dir, drill_id) / f"report.{fmt}"
    if BACKUP_ID_RE.match(drill_id) and local.is_file():
        return local.read_text()
    if BACKUP_ID_RE.match(drill_id):
        for policy, repo in repos:
            try:
                return repo.get_bytes(report_key(policy, drill_id, fmt)).decode()
            except RepositoryError:
                continue
    raise NotFoundError(f"no drill report {drill_id!r}")
