"""The ``config-git`` driver: configuration files kept in Git history, forever.

Where things live. The policy's ``repository`` is a bare Git repository (created when
missing); each backup that finds a change is one commit on the branch named after the
policy, its tree holding the files at their absolute paths (``etc/nginx/nginx.conf``)
plus ``.backupctl-metadata.json`` with every entry's exact mode and owner. backupctl's
own manifests live *inside* that directory, in ``<repository>/backupctl/`` (see
``ConfigGitPolicy.manifest_repository``): Git never reads or writes an unknown entry
of its directory, so the two never meet, and copying the one directory takes the
history and the manifests together, so ``catalog sync`` rebuilds the catalog from it
alone. A sibling directory would have split what must be copied together; manifests
beside Git's own files (``<repository>/<policy>/…``) could collide with Git's names
(a policy called ``objects`` or ``hooks``).

A manifest records one commit (id, tree, what changed) and is, as for every driver,
written last. The commit is made (objects, then the branch moved) before it; if the
manifest is never written, the next check compares against the newest *recorded*
commit, so nothing is lost from the catalog: the change is committed again.

Each backup also stores its commits as an object, ``history.bundle`` (``bundles``): what
``backupctl copy`` takes to the policy's other repositories, so the history outlives the
host. A restore, drill or deep verify reads from the Git directory when it holds the
commit, else from a repository rebuilt from the bundle chain (``rebuild``).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from backupctl.catalog.manifest import Manifest
from backupctl.catalog.query import PolicyBackups
from backupctl.checks import CheckResult
from backupctl.drivers.base import DrillPlan, Driver, RestoreRun
from backupctl.drivers.config_git import bundles, extract, history
from backupctl.drivers.config_git import restore_steps as steps
from backupctl.drivers.config_git.changes import (
    Changes,
    build_tree,
    commit_message,
    compare,
    read_state,
)
from backupctl.drivers.config_git.details import ChangeCounts, ConfigGitDetails
from backupctl.drivers.config_git.gitrepo import GitRepository, Identity
from backupctl.drivers.config_git.rebuild import CommitSource, Rebuild
from backupctl.drivers.config_git.snapshot import Snapshot, printable, scan
from backupctl.errors import BackupFailed, NothingChanged, UsageError, VerificationFailed
from backupctl.policy.config_git import MANIFEST_DIR, ConfigGitPolicy, ConfigGitRestoreOptions
from backupctl.retention import Decision
from backupctl.storage.base import Repository
from backupctl.timefmt import as_time

if TYPE_CHECKING:
    from backupctl.drivers.session import BackupSession
    from backupctl.runbook.step import Step

log = structlog.get_logger()

KEEP_FOREVER = "config history is kept forever"
_LISTED = 500  # paths per change list kept in a manifest (the commit has them all)


class ConfigGitDriver(Driver[ConfigGitPolicy, ConfigGitRestoreOptions]):
    """Configuration files: ``commit`` backups into a bare Git repository."""

    name = "config-git"
    kinds = ("commit",)
    rebuild_rank = 10  # services read their configuration: it comes back first

    @property
    def git(self) -> GitRepository:
        return GitRepository(self.policy.git_dir)

    @property
    def branch(self) -> str:
        return f"refs/heads/{self.policy.name}"

    def backup(self, kind: str, session: BackupSession) -> ConfigGitDetails:
        policy, git = self.policy, self.git
        session.tool_versions["git"] = git.version()
        action = git.ensure(policy.name, allowed=(MANIFEST_DIR,))
        base = history.last_recorded(session.repo, policy.name, kind)
        # a tampered last manifest is refused (exit 3) before its commit reaches git
        base_commit = ConfigGitDetails.of(base).commit if base else None
        snapshot = _scan(policy)
        tree, state = build_tree(git, snapshot)
        if base_commit and git.resolve(base_commit) is None:
            log.warning("the last recorded commit is not in the repository", commit=base_commit)
            base_commit = None
        if base_commit and git.tree_of(base_commit) == tree:
            raise NothingChanged(f"no configuration file changed since commit {base_commit[:12]}")
        changes = compare(read_state(git, base_commit) if base_commit else {}, state)
        when = session.started_at.astimezone(UTC).replace(microsecond=0)  # Git keeps seconds
        head = git.resolve(self.branch)
        trailers = {
            "Backupctl-Policy": policy.name,
            "Backupctl-Backup-Id": session.backup_id,
            "Backupctl-Host": socket.gethostname(),
        }
        message = commit_message(policy.name, changes, trailers)
        commit = git.commit_tree(tree, head, message, _identity(), when)
        git.update_ref(self.branch, commit, head, f"backupctl {session.backup_id}")
        log.info("configuration committed", commit=commit, changes=changes.counts)
        previous = bundles.builds_on(base, base_commit)
        since = base_commit if previous is not None else None
        session.artifacts.append(
            bundles.store(session.repo, session.prefix, git, self.branch, since)
        )
        details = _details(policy, snapshot, changes, commit, head, base_commit, tree, when, action)
        details.bundle_base = since
        details.bundle_base_backup = previous.backup_id if previous is not None else None
        return details

    @classmethod
    def note(cls, manifest: Manifest) -> str:
        """``commit 3fa9c1d2e4f5: 2 changed, 1 added, 0 removed: /etc/nginx/nginx.conf, …``
        (empty for details that do not fit: listings never fail on one bad manifest)"""
        try:
            return ConfigGitDetails.of(manifest).summary
        except VerificationFailed:
            return ""

    def retention(self, backups: list[Manifest], now: datetime) -> list[Decision]:
        return [Decision(m.backup_id, True, KEEP_FOREVER) for m in backups]

    def depends_on(self, repo: Repository, manifest: Manifest) -> list[Manifest]:
        """The backups whose bundles a restore without the Git directory fetches before
        this one's, oldest first (none for a backup without a bundle)."""
        if bundles.bundle_of(manifest) is None:
            return []
        return bundles.chain(repo, manifest)[:-1]

    def verify_quick(self, repo: Repository, manifest: Manifest) -> list[CheckResult]:
        """The commit is in the Git repository, with the recorded tree, on the branch; with
        no Git repository at all (a new host), its bundle chain is complete in ``repo``
        (each bundle's checksum is checked with the backup's objects)."""
        details, git = ConfigGitDetails.of(manifest), self.git
        commit = details.commit
        name = f"commit {commit[:12]}"
        if not (git.git_dir / "HEAD").is_file() and bundles.bundle_of(manifest) is not None:
            try:
                links = bundles.chain(repo, manifest)
            except VerificationFailed as exc:
                return [CheckResult(name, False, str(exc))]
            where = f"no Git repository at {git.git_dir}: in the bundles of {len(links)} backup(s)"
            return [CheckResult(name, True, where)]
        if git.resolve(commit) is None:
            return [CheckResult(name, False, f"not in {git.git_dir}")]
        tree = git.tree_of(commit)
        checks = [CheckResult(name, tree == details.tree, f"tree {tree[:12]} in {git.git_dir}")]
        head = git.resolve(self.branch)
        reachable = head is not None and git.is_ancestor(commit, head)
        where = f"reachable from {self.branch}"
        checks.append(CheckResult("history", reachable, where if reachable else f"not {where}"))
        return checks

    def verify_deep(self, repo: Repository, manifest: Manifest, scratch: Path) -> list[CheckResult]:
        """Write every file of the commit into ``scratch`` and compare it with its blob
        (from the history rebuilt from bundles in ``scratch`` when the Git directory does
        not hold the commit)."""
        source = self.source(repo, manifest, None, scratch / "history")
        git, chosen = source.git, source.chosen()
        target = scratch / "files"
        target.mkdir()
        try:
            detail = extract.extract(git, chosen, target)
            return [CheckResult("extract", True, detail), *extract.verify(git, chosen, target)]
        finally:
            extract.clear(target)  # restrictive directory modes would stop a plain rmtree

    def source(
        self,
        repo: Repository,
        manifest: Manifest,
        only: Path | None,
        scratch: Path,
        strict: bool = False,
    ) -> CommitSource:
        """Where ``manifest``'s commit is read from: the Git directory when it holds it,
        else a repository rebuilt in ``scratch`` from the bundle chain read from ``repo``
        (``strict``: only when there is no Git repository at all; one that lost the commit
        is read as it is, and its checks fail). Raises VerificationFailed when the details
        do not fit or the chain is broken."""
        commit = ConfigGitDetails.of(manifest).commit
        git = self.git
        there = (git.git_dir / "HEAD").is_file()
        if git.holds(commit) or (strict and there):
            return CommitSource(commit, only, git)
        links = bundles.chain(repo, manifest)
        return CommitSource(commit, only, git, Rebuild(repo, links, scratch, self.branch))

    def options_at(
        self, moment: datetime, backups: PolicyBackups, staging: Path
    ) -> ConfigGitRestoreOptions:
        """The files as they were at ``moment`` (the newest commit at or before it), into
        ``staging``: configuration never comes back over the live files."""
        return ConfigGitRestoreOptions(at=moment.isoformat(), target_dir=staging)

    def rebuild_options(
        self, repo: Repository, backups: PolicyBackups, staging: Path
    ) -> ConfigGitRestoreOptions:
        """The newest commit's files into ``staging`` (a rebuild then puts each where
        nothing is)."""
        return ConfigGitRestoreOptions(at=backups.newest().backup_id, target_dir=staging)

    def choose_backup(self, options: ConfigGitRestoreOptions, backups: PolicyBackups) -> Manifest:
        """``--at``: a commit id (or unique prefix), a backup id, else the newest commit at
        or before it as a time. Raises NotFoundError / UsageError saying what is wrong."""
        policy = self.policy.name
        if options.at is None:
            raise UsageError(
                f"say which version to bring back: --at TIME|COMMIT "
                f"(`backupctl list {policy}` shows the commits)"
            )
        commits = backups.restorable()
        found = history.named(commits, options.at.strip(), policy)
        if found is not None:
            return found
        moment = as_time(options.at)
        if moment is not None:
            return history.at_or_before(commits, moment, policy)
        raise UsageError(
            f"policy {policy} has no commit or backup {options.at!r}, and it is not a time like "
            f'"2026-11-21 14:02:00" (`backupctl list {policy}` shows the commits)'
        )

    def drill_plan(
        self, repo: Repository, manifest: Manifest, run: RestoreRun, sandbox: Path
    ) -> DrillPlan:
        from backupctl.drivers.config_git.drill import drill_plan

        # a drill checks the Git repository there; without one, the history from bundles
        source = self.source(repo, manifest, None, sandbox / "history", strict=True)
        return drill_plan(self.git, self.branch, manifest, sandbox, source.rebuild)

    def restore_steps(
        self,
        repo: Repository,
        manifest: Manifest,
        options: ConfigGitRestoreOptions,
        run: RestoreRun,
    ) -> list[Step]:
        if options.target_dir is None:
            raise UsageError(
                "config-git restores write into an empty directory: give --target-dir DIR "
                "(backupctl never writes over the live files; compare and copy them back)"
            )
        target = steps.absolute(options.target_dir)
        for watched in self.policy.paths:
            if target == watched or target.is_relative_to(watched):
                raise UsageError(
                    f"--target-dir {target} is inside {watched}, which this policy watches: "
                    "the next check would commit the restored files; choose another directory"
                )
        if not run.resuming:
            steps.refuse_non_empty(target)  # a new restore, not one being resumed: say it now
        scratch = run.layout.work(self.policy.name, f"restore-{run.run_id}")
        source = self.source(repo, manifest, options.path, scratch)
        if source.rebuild is None:
            source.chosen()  # a --path the commit lacks is refused now, before any step
        when = history.committed_at(manifest)
        return [steps.PrepareTarget(target), *steps.reading_steps(source, target, when)]


def _scan(policy: ConfigGitPolicy) -> Snapshot:
    """Scan the policy's paths. Raises BackupFailed when none exists or some cannot be read."""
    snapshot = scan(policy.paths, policy.exclude, skip=[policy.git_dir])
    if snapshot.missing:
        missing = [printable(p) for p in snapshot.missing]
        log.warning("configured paths are missing; recorded as absent", paths=missing)
    if not snapshot.entries:
        listed = ", ".join(str(p) for p in policy.paths)
        raise BackupFailed(f"none of the paths of policy {policy.name} exist: {listed}")
    if snapshot.unreadable:
        raise BackupFailed(
            f"cannot read {', '.join(printable(p) for p in snapshot.unreadable[:5])}"
            + (f" and {len(snapshot.unreadable) - 5} more" if len(snapshot.unreadable) > 5 else "")
            + ": run as root, or add them to the policy's exclude"
        )
    for path in policy.paths:
        entry = snapshot.entries.get(os.path.normpath(path))
        if entry is not None and entry.kind == "link":
            log.warning("a configured path is a symlink: recorded as a link", path=str(path))
    if snapshot.skipped:
        skipped = [printable(p) for p in snapshot.skipped[:20]]
        log.warning("not recorded (not a file, link or directory)", paths=skipped)
    return snapshot


def _identity() -> Identity:
    return Identity("backupctl", f"backupctl@{socket.gethostname() or 'localhost'}")


def _details(
    policy: ConfigGitPolicy,
    snapshot: Snapshot,
    changes: Changes,
    commit: str,
    parent: str | None,
    base: str | None,
    tree: str,
    when: datetime,
    action: str,
) -> ConfigGitDetails:
    return ConfigGitDetails(
        summary=f"commit {commit[:12]}: {changes.counts}: {changes.paths(3)}",
        commit=commit,
        parent=parent,
        compared_with=base,
        tree=tree,
        branch=f"refs/heads/{policy.name}",
        git_dir=str(policy.git_dir),
        repository_action=action,
        committed_at=when,
        counts=ChangeCounts(
            changed=len(changes.changed),
            added=len(changes.added),
            removed=len(changes.removed),
        ),
        changed=changes.changed[:_LISTED],
        added=changes.added[:_LISTED],
        removed=changes.removed[:_LISTED],
        files=len(snapshot.of_kind("file")),
        links=len(snapshot.of_kind("link")),
        directories=len(snapshot.of_kind("dir")),
        bytes=sum(snapshot.sizes.values()),
        paths=[str(p) for p in policy.paths],
        missing=[printable(p) for p in snapshot.missing],
        excluded=len(snapshot.excluded),
        skipped=[printable(p) for p in snapshot.skipped[:50]],
    )
