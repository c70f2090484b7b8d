"""The recorded history of a config-git policy: its manifests, one per commit."""

from __future__ import annotations

import re
from datetime import datetime

from backupctl.catalog.manifest import MANIFEST, Manifest, read_manifest
from backupctl.drivers.config_git.details import ConfigGitDetails
from backupctl.errors import NotFoundError, UsageError
from backupctl.storage.base import Repository
from backupctl.timefmt import utc_and_local

_HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")


def committed_at(manifest: Manifest) -> datetime:
    """When the commit's snapshot was taken (whole seconds, as Git records it); the
    manifest's finish time when it does not say. Raises VerificationFailed naming the
    backup when its details do not fit."""
    return ConfigGitDetails.of(manifest).committed_at or manifest.finished_at


def last_recorded(repo: Repository, policy: str, kind: str) -> Manifest | None:
    """The newest manifest of ``policy`` in ``repo``. Backup ids sort by their second;
    within one second, the manifests' finish times decide."""
    ids = [
        info.key.split("/")[2]
        for info in repo.list(f"{policy}/{kind}/")
        if info.key.endswith("/" + MANIFEST) and info.key.count("/") == 3
    ]
    if not ids:
        return None
    second = max(ids).split("-")[0]
    newest = [read_manifest(repo, policy, kind, i) for i in ids if i.startswith(second + "-")]
    return max(newest, key=lambda m: m.finished_at)


def at_or_before(commits: list[Manifest], moment: datetime, policy: str) -> Manifest:
    """The newest commit taken at or before ``moment``.

    Raises NotFoundError when nothing is recorded, UsageError when ``moment`` is
    before the first commit."""
    if not commits:
        raise NotFoundError(
            f"no commit of policy {policy!r} in the catalog "
            "(run `backupctl backup` first, or `backupctl catalog sync` on a new host)"
        )
    ordered = sorted(commits, key=lambda m: (committed_at(m), m.finished_at))
    earlier = [m for m in ordered if committed_at(m) <= moment]
    if not earlier:
        first = ordered[0]
        raise UsageError(
            f"{utc_and_local(moment)} is before the first commit of {policy} "
            f"({ConfigGitDetails.of(first).commit[:12]}, {utc_and_local(committed_at(first))})"
        )
    return earlier[-1]


def named(commits: list[Manifest], text: str, policy: str) -> Manifest | None:
    """The commit ``text`` names: a backup id, or a commit id or its unique prefix.

    Returns None when it names none. Raises UsageError for an ambiguous prefix,
    VerificationFailed naming a backup whose details do not fit (it might be the one)."""
    for manifest in commits:
        if manifest.backup_id == text:
            return manifest
    wanted = text.lower()
    if not _HEX_RE.match(wanted):
        return None
    matches = [m for m in commits if ConfigGitDetails.of(m).commit.startswith(wanted)]
    if len(matches) > 1:
        ids = ", ".join(ConfigGitDetails.of(m).commit[:12] for m in matches[:5])
        raise UsageError(f"commit {text!r} of {policy} is ambiguous ({ids}): give more digits")
    return matches[0] if matches else None
