"""The model rollback runbook: materialise -> check hashes -> validate -> performance
gate -> apply atomically -> reload. Before apply the service never sees anything; a
failure after apply swaps the previous version back and reloads it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.models.apply import swap_in
from backupctl.drivers.models.blobs import blob_key, fetch_blob
from backupctl.drivers.models.details import ModelDetails
from backupctl.drivers.models.tree import Entry, safe_entries, scan_tree, tree_hash
from backupctl.errors import VerificationFailed
from backupctl.hooks import run_hook, run_hooks
from backupctl.policy.model import ModelPolicy
from backupctl.runbook.step import RunContext, Step
from backupctl.statefile import inherited_umask
from backupctl.storage.base import Repository


def entries_of(manifest: Manifest) -> list[Entry]:
    """The manifest's entries, each checked to stay inside the model (VerificationFailed)."""
    return safe_entries(ModelDetails.of(manifest).entries, manifest.backup_id)


class Materialise(Step):
    name = "materialise"

    def __init__(self, repo: Repository, manifest: Manifest, staging: Path):
        self.repo, self.manifest, self.staging = repo, manifest, staging

    def describe(self, ctx: RunContext) -> str:
        d = ModelDetails.of(self.manifest)
        size = f" ({d.files} files, {d.bytes} bytes)" if None not in (d.files, d.bytes) else ""
        return f"write version {d.version}{size} to {self.staging}"

    def run(self, ctx: RunContext) -> str:
        entries = entries_of(self.manifest)  # refused before anything is written
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        if (umask := inherited_umask()) is not None:
            # restored data, not backupctl's own: the model's top directory (its mode is not
            # recorded) is readable as the operator's umask allows, so the service can load it
            os.chmod(self.staging, 0o755 & ~umask)
        artifacts = {a.key: a for a in self.manifest.artifacts}
        for entry in entries:
            target = self.staging / entry.path
            if entry.kind == "dir":
                target.mkdir(exist_ok=True)
            elif entry.kind == "symlink":
                target.symlink_to(entry.target)
            else:
                artifact = artifacts[blob_key(self.manifest.policy, entry.sha256)]
                fetch_blob(self.repo, artifact, entry, target)
                os.chmod(target, entry.mode)
        for entry in reversed(entries):  # directory modes last (they may forbid writing)
            if entry.kind == "dir":
                os.chmod(self.staging / entry.path, entry.mode)
        return f"{len(entries)} entries written, every file's sha256 checked while writing"

    def compensate(self, ctx: RunContext) -> str:
        if ctx.get("applied"):
            return "the staging directory became the served version (see apply)"
        shutil.rmtree(self.staging, ignore_errors=True)
        return f"removed {self.staging}"


class CheckHashes(Step):
    name = "check-hashes"

    def __init__(self, manifest: Manifest, staging: Path):
        self.manifest, self.staging = manifest, staging

    def describe(self, ctx: RunContext) -> str:
        return "read the staging directory back and compare its tree hash with the manifest's"

    def run(self, ctx: RunContext) -> str:
        found = tree_hash(scan_tree(self.staging))
        wanted = ModelDetails.of(self.manifest).tree_hash
        if found != wanted:
            raise VerificationFailed(f"staging tree hash {found[:16]} differs from {wanted[:16]}")
        return f"tree hash {found[:16]}… matches the manifest"


class PerfGate(Step):
    """Run the performance tests: a non-zero exit, or a JSON verdict with "passed": false
    (or "pass": false) on its last line, fails the gate."""

    name = "perf-test"

    def __init__(self, policy: ModelPolicy, env: dict[str, str]):
        self.policy, self.env = policy, env

    def describe(self, ctx: RunContext) -> str:
        n = len(self.policy.restore.perf_test)
        return f"run {n} performance test hook(s) on the staging directory" if n else "no perf test"

    def hooks(self) -> list[str]:
        return list(self.policy.restore.perf_test)

    def run(self, ctx: RunContext) -> str:
        checks: list[dict[str, Any]] = ctx.get("checks") or []
        for command in self.policy.restore.perf_test:
            output = run_hook(
                self.policy,
                command,
                step=self.name,
                env=self.env,
                timeout=self.policy.restore.hook_timeout,
            )
            verdict = _verdict(output)
            passed = verdict.get("passed", verdict.get("pass", True)) is not False
            checks.append(
                {"name": f"perf {command}", "passed": passed, "detail": json.dumps(verdict)}
            )
            ctx["checks"] = checks
            if not passed:
                raise VerificationFailed(
                    f"performance test {command!r} failed: {json.dumps(verdict)}"
                )
        return f"{len(self.policy.restore.perf_test)} performance test(s) passed"


def _verdict(output: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else {}
    return {}


class Apply(Step):
    name = "apply"

    def __init__(self, policy: ModelPolicy, staging: Path, aside: Path, env: dict[str, str]):
        self.policy, self.staging, self.aside, self.env = policy, staging, aside, env

    @property
    def served(self) -> Path:
        return self.policy.path

    def describe(self, ctx: RunContext) -> str:
        return f"swap {self.served} to the restored version atomically; keep the replaced one aside"

    def run(self, ctx: RunContext) -> str:
        if self.served.is_symlink():
            ctx["old_target"] = os.readlink(self.served)
            detail = swap_in(self.staging, self.served)
        else:
            detail = swap_in(self.staging, self.served)
            if self.staging.exists():  # it now holds the replaced version
                os.rename(self.staging, self.aside)
                ctx["aside"] = str(self.aside)
        ctx["applied"] = True
        return detail

    def compensate(self, ctx: RunContext) -> str:
        if not ctx.get("applied"):
            return "nothing was applied"
        if (old := ctx.get("old_target")) is not None:
            link = self.served.with_name(f".{self.served.name}.undo")
            link.unlink(missing_ok=True)
            link.symlink_to(old)
            os.replace(link, self.served)
            detail = f"{self.served} points at {old} again"
        else:
            os.rename(self.aside, self.staging)
            swap_in(self.staging, self.served)
            shutil.rmtree(self.staging, ignore_errors=True)
            detail = f"{self.served} holds the previous version again"
        ctx["applied"] = False
        reload = run_hooks(
            self.policy,
            self.policy.restore.start,
            step="undo-apply",
            env=self.env,
            timeout=self.policy.restore.hook_timeout,
        )
        return f"{detail}; {reload}"
