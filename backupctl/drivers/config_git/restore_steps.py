"""Restore runbook steps for configuration history: files come back into an empty
directory, never over the live ones (the operator compares and copies them back)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from backupctl.drivers.config_git import extract
from backupctl.drivers.config_git.rebuild import CommitSource, Rebuild
from backupctl.errors import UsageError, VerificationFailed
from backupctl.runbook.step import RunContext, Step
from backupctl.timefmt import utc_and_local


def refuse_non_empty(target: Path) -> None:
    """Raises UsageError unless ``target`` is missing or an empty directory."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UsageError(f"--target-dir {target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(
            f"--target-dir {target} is not empty; give a new or empty directory "
            "(backupctl never mixes restored files with others)"
        )


class PrepareTarget(Step):
    """Create the target directory, or check that the given one is empty."""

    name = "prepare-target"

    def __init__(self, target: Path):
        self.target = target

    def describe(self, ctx: RunContext) -> str:
        return f"create {self.target} (or check that it is empty)"

    def run(self, ctx: RunContext) -> str:
        if ctx.get("target_ready"):
            return f"{self.target} prepared earlier in this run"
        refuse_non_empty(self.target)
        created = not self.target.exists()
        self.target.mkdir(parents=True, exist_ok=True, mode=0o700)
        ctx["target_created"], ctx["target_ready"] = created, True
        return f"{'created' if created else 'using the empty directory'} {self.target}"

    def compensate(self, ctx: RunContext) -> str:
        if ctx.get("target_created") and self.target.is_dir() and not any(self.target.iterdir()):
            self.target.rmdir()
            return f"removed {self.target}"
        return f"left {self.target} in place"


class ExtractFiles(Step):
    """Write the chosen files with their recorded modes."""

    name = "extract-files"

    def __init__(self, source: CommitSource, target: Path, when: datetime):
        self.source, self.target, self.when = source, target, when

    def describe(self, ctx: RunContext) -> str:
        return (
            f"write {self.source.describe()} (committed {utc_and_local(self.when)}) "
            f"into {self.target}, "
            "modes as recorded"
        )

    def run(self, ctx: RunContext) -> str:
        extract.clear(self.target)  # a resumed run starts again from the empty directory
        detail = extract.extract(self.source.git, self.source.chosen(), self.target)
        ctx["datadir"] = str(self.target)
        ctx["recovery_point"] = {
            "time_utc": self.when.isoformat(),
            "commit": self.source.commit,
        }
        return detail

    def compensate(self, ctx: RunContext) -> str:
        if not ctx.get("target_ready"):
            return "nothing written"
        return f"removed {extract.clear(self.target)} restored entries from {self.target}"


class VerifyFiles(Step):
    """Read every written file back and compare it with its blob; check the modes."""

    name = "verify-files"

    def __init__(self, source: CommitSource, target: Path):
        self.source, self.target = source, target

    def describe(self, ctx: RunContext) -> str:
        return "compare every written file with its blob in the commit, and every mode"

    def run(self, ctx: RunContext) -> str:
        chosen = self.source.chosen()
        checks = extract.verify(self.source.git, chosen, self.target)
        ctx.record_checks(checks)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise VerificationFailed("; ".join(f"{c.name}: {c.detail}" for c in failed))
        return f"{len(chosen.blobs)} file(s) and link(s) match commit {chosen.commit[:12]}"


class RebuildHistory(Step):
    """Without the Git directory (a lost host): rebuild the commit's history in a scratch
    directory from the bundles of its backup and of every backup it builds on."""

    name = "rebuild-history"

    def __init__(self, rebuild: Rebuild):
        self.rebuild = rebuild

    def describe(self, ctx: RunContext) -> str:
        return self.rebuild.describe()

    def run(self, ctx: RunContext) -> str:
        self.rebuild.ensure()
        return (
            f"commit {self.rebuild.commit[:12]} rebuilt from {len(self.rebuild.links)} "
            f"bundle(s) in {self.rebuild.root}"
        )

    def compensate(self, ctx: RunContext) -> str:
        return self.rebuild.remove()

    def work_bytes(self) -> int | None:
        return sum(a.stored_bytes for m in self.rebuild.links for a in m.artifacts)


class RemoveHistory(Step):
    """Remove the rebuilt history (the restored files stay)."""

    name = "remove-history"

    def __init__(self, rebuild: Rebuild):
        self.rebuild = rebuild

    def describe(self, ctx: RunContext) -> str:
        return f"remove the rebuilt history ({self.rebuild.root})"

    def run(self, ctx: RunContext) -> str:
        return self.rebuild.remove()


def reading_steps(source: CommitSource, target: Path, when: datetime) -> list[Step]:
    """Extract and verify, between rebuilding the history and removing it when the
    commit is read from bundles."""
    steps: list[Step] = [ExtractFiles(source, target, when), VerifyFiles(source, target)]
    if source.rebuild is None:
        return steps
    return [RebuildHistory(source.rebuild), *steps, RemoveHistory(source.rebuild)]


def absolute(path: Path) -> Path:
    """``path`` made absolute against the current directory (symlinks left alone)."""
    return Path(os.path.abspath(path))
