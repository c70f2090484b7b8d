"""The config-history recovery drill: check the Git repository's integrity, then write
the newest state into the sandbox and compare every file with its blob. Without the Git
directory (a lost host), the history is first rebuilt from the bundles, and the rebuilt
repository is the one checked: the drill proves what a restore would read."""

from __future__ import annotations

from pathlib import Path

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.base import DrillPlan
from backupctl.drivers.config_git import extract, history
from backupctl.drivers.config_git import restore_steps as steps
from backupctl.drivers.config_git.details import ConfigGitDetails
from backupctl.drivers.config_git.gitrepo import GitRepository
from backupctl.drivers.config_git.rebuild import CommitSource, Rebuild
from backupctl.errors import BackupctlError, VerificationFailed
from backupctl.runbook.step import RunContext, Step


class CheckHistory(Step):
    """``git fsck --full --strict`` over the whole repository, and the drilled commit
    reachable from the policy's branch with its recorded tree."""

    name = "check-history"

    def __init__(self, source: CommitSource, branch: str, manifest: Manifest):
        self.source, self.branch, self.manifest = source, branch, manifest

    def describe(self, ctx: RunContext) -> str:
        where = self.source.rebuild.git if self.source.rebuild else self.source.git
        return f"check every object of {where.git_dir} (git fsck) and the commit's history"

    def run(self, ctx: RunContext) -> str:
        details = ConfigGitDetails.of(self.manifest)
        commit = details.commit
        git = self.source.git
        problems = git.fsck()
        fsck = CheckResult(
            "git-fsck",
            not problems,
            "; ".join(problems[:5]) if problems else f"every object of {git.git_dir} intact",
        )
        checks = [fsck]
        if not problems:
            tree = git.tree_of(commit) if git.resolve(commit) else None
            head = git.resolve(self.branch)
            recorded = tree is not None and tree == details.tree
            reachable = recorded and head is not None and git.is_ancestor(commit, head)
            where = f"commit {commit[:12]} with its recorded tree, reachable from {self.branch}"
            checks.append(CheckResult("history", reachable, where if reachable else f"no {where}"))
        ctx.record_checks(checks)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise VerificationFailed("; ".join(f"{c.name}: {c.detail}" for c in failed))
        return checks[-1].detail


class RemoveFiles(Step):
    """Empty the sandbox directory (restored directories may be read-only)."""

    name = "remove-files"

    def __init__(self, target: Path):
        self.target = target

    def describe(self, ctx: RunContext) -> str:
        return f"remove the restored files from {self.target}"

    def run(self, ctx: RunContext) -> str:
        removed = extract.clear(self.target)
        if self.target.is_dir():
            self.target.rmdir()
        return f"removed {removed} entries"


def drill_plan(
    git: GitRepository,
    branch: str,
    manifest: Manifest,
    sandbox: Path,
    rebuild: Rebuild | None = None,
) -> DrillPlan:
    """Check the repository, restore ``manifest``'s commit into ``sandbox``, verify every
    file, remove them; with ``rebuild``, the history is rebuilt from bundles first (and
    removed last). RPO from the commit's snapshot time."""
    target = sandbox / "files"
    when = history.committed_at(manifest)
    source = CommitSource(ConfigGitDetails.of(manifest).commit, None, git, rebuild)
    check = CheckHistory(source, branch, manifest)
    files: list[Step] = [
        steps.PrepareTarget(target),
        steps.ExtractFiles(source, target, when),
        steps.VerifyFiles(source, target),
        RemoveFiles(target),
    ]
    if rebuild is not None:
        plan = [steps.RebuildHistory(rebuild), check, *files, steps.RemoveHistory(rebuild)]
        return DrillPlan(plan, when, steps.VerifyFiles.name)
    try:
        source.chosen()
    except BackupctlError:  # a damaged repository: check-history names the damage
        return DrillPlan([check], when, steps.VerifyFiles.name)
    return DrillPlan([check, *files], when, steps.VerifyFiles.name)
