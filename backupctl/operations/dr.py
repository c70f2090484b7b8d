"""``backupctl dr bootstrap``: the server is gone; rebuild the whole stack on a new host
from one repository (the off-site copy), its credentials and its key.

1. the policies and hooks the repository keeps (``operations.setup``) come back under a
   root directory (``dr_setup``), the key goes where the policies read it;
2. the catalog is rebuilt from every repository the policies name that still answers
   (the lost host's local repository does not: its backups are read from the copies);
3. the plan: every policy's newest recoverable point (``Driver.rebuild_options``), in
   the order configuration → databases → models → search indices (``rebuild_rank``),
   with sizes and what the operator still has to provide (secrets kept as ``REDACTED``,
   a password file that is not there);
4. with ``--yes``: each restore in turn (in place; configuration files into a staging
   directory, then each one where nothing is), then a report: per system the recovery
   point, its RPO (how far behind the newest backup the repository had of the lost host)
   and time; for the whole, the RTO.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from backupctl.drivers.registry import driver_for
from backupctl.errors import BackupctlError, RepositoryError, UsageError
from backupctl.offline import offline
from backupctl.operations.catalog import sync_catalog
from backupctl.operations.context import Context
from backupctl.operations.dr_setup import (
    RecoveredPolicy,
    ensure_datadir,
    install_key,
    kept_setups,
    key_files_for,
    place_config_files,
    read_policy_texts,
    recover_setup,
)
from backupctl.operations.restore import RestorePlan, plan_restore, run_restore
from backupctl.operations.sources import reading
from backupctl.policy.common import PolicyBase
from backupctl.policy.loader import load_policies
from backupctl.policy.stack import Stack, load_stacks
from backupctl.runbook.engine import RunbookFailed
from backupctl.statefile import private_dir, write_atomic
from backupctl.storage.base import Repository
from backupctl.storage.factory import open_repository
from backupctl.storage.keys import new_backup_id
from backupctl.storage.spec import RepositorySpec
from backupctl.units import human_bytes, human_duration

log = structlog.get_logger()


@dataclass
class SystemPlan:
    """One policy's restore in the rebuild."""

    policy: PolicyBase
    plan: RestorePlan
    #: the newest point the repository has of it (the recovery point the plan reaches)
    point: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.name,
            "driver": self.policy.driver,
            "recovery_point": self.point.isoformat(),
            "stored_bytes": self.plan.manifest.stored_bytes,
            "raw_bytes": self.plan.manifest.raw_bytes,
            "plan": self.plan.to_dict(),
        }


@dataclass
class Bootstrap:
    """What a rebuild will do (or did, for a dry run: nothing but the catalog)."""

    url: str
    root: Path
    recovered: list[RecoveredPolicy]
    keys: list[Path]
    needs: list[str]
    systems: list[SystemPlan]
    live_dirs: list[Path]
    staging: Path
    ctx: Context
    #: the newest backup the repository has of the lost host, of any policy
    last_seen: datetime | None = None
    catalog: dict[str, int] = field(default_factory=dict)
    #: the policies by wave: one after another, a wave's side by side
    waves: list[list[str]] = field(default_factory=list)
    #: the stack whose order and parallel groups the waves follow
    stack: str | None = None
    #: when the rebuild began, and the seconds its first part took (the setup recovered,
    #: the catalog rebuilt, the plan made): part of the RTO, unlike an operator's answer
    started_at: datetime | None = None
    plan_seconds: float = 0.0

    def system(self, name: str) -> SystemPlan:
        return next(s for s in self.systems if s.policy.name == name)

    def eta_seconds(self) -> tuple[float, list[str]]:
        """The rebuild's projected time (each wave's slowest system, from past restores and
        drills, on this host or kept in the repository) and the systems never measured."""
        total, unknown = 0.0, []
        for wave in self.waves:
            known = []
            for name in wave:
                estimate = self.system(name).plan.estimate_seconds
                if estimate is None:
                    unknown.append(name)
                else:
                    known.append(estimate)
            total += max(known, default=0.0)
        return round(total, 1), unknown

    def to_dict(self) -> dict[str, Any]:
        eta, unknown = self.eta_seconds()
        return {
            "url": self.url,
            "root": str(self.root),
            "policies_dir": str(self.root / "policies"),
            "recovered": [r.to_dict() for r in self.recovered],
            "keys_installed": [str(k) for k in self.keys],
            "needs": self.needs,
            "live_dirs_created": [str(d) for d in self.live_dirs],
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "catalog": self.catalog,
            "stack": self.stack,
            "waves": self.waves,
            "eta_seconds": eta,
            "never_measured": unknown,
            "systems": [s.to_dict() for s in self.systems],
        }


def open_source(url: str, endpoint_url: str | None, key_file: Path | None) -> Repository:
    """The repository a rebuild starts from. Raises RepositoryError / EncryptionError."""
    spec: dict[str, Any] = {"url": url, "endpoint_url": endpoint_url}
    if key_file is not None:
        spec["encryption"] = {"key_file": key_file}
    try:
        return open_repository(RepositorySpec.model_validate(spec))
    except ValueError as exc:  # pydantic: a malformed URL or a key file that is no key
        raise RepositoryError(f"cannot open {url}: {exc}") from None


def _reading_source(ctx: Context, source: Repository) -> Context:
    """``ctx`` opening ``source`` (already open, with the operator's key) wherever a
    policy names its URL."""

    def open_spec(spec: RepositorySpec) -> Repository:
        return source if spec.url == source.url else open_repository(spec)

    return dataclasses.replace(
        ctx,
        repositories=lambda policy: open_spec(policy.manifest_repository),
        open_spec=open_spec,
    )


def plan_bootstrap(
    ctx: Context,
    source: Repository,
    root: Path,
    key_file: Path | None,
    *,
    write: bool,
    stack: str | None = None,
) -> Bootstrap:
    """Recover the setup (``write``: under ``root``; otherwise into a scratch directory,
    only to plan), sync the catalog, plan each restore, in the order and parallel groups
    of ``stack`` (default: the one stack recovered, if there is exactly one) for its
    policies, the others after them by driver. Raises UsageError (a file there with
    other content, no setup in the repository, an unknown stack), PolicyError,
    RepositoryError."""
    began, started_at = time.monotonic(), ctx.clock()
    setups = kept_setups(source)
    checked = recover_setup(source, setups, root, write=False)  # refuses conflicts first
    where = root if write else Path(tempfile.mkdtemp(prefix="dr-plan-", dir=_scratch(ctx)))
    recovered = recover_setup(source, setups, where, write=True)
    texts = read_policy_texts(recovered, source)
    wanted = key_files_for(texts, source.url)
    keys = install_key(key_file, wanted, write=write) if key_file is not None else []
    with offline():  # secrets and other repositories' keys may not be on this host yet
        policies = load_policies(where / "policies")
    stacks = {s.name: s for s in load_stacks(where / "stacks")}
    if stack is not None and stack not in stacks:
        known = ", ".join(sorted(stacks)) or "none"
        raise UsageError(f"the repository keeps no stack {stack!r} (stacks: {known})")
    chosen = stacks[stack] if stack else (next(iter(stacks.values())) if len(stacks) == 1 else None)
    rebuilt = _reading_source(ctx, source)
    boot = Bootstrap(
        url=source.url,
        root=root,
        recovered=recovered if write else checked,
        keys=keys,
        needs=_needs(policies, recovered, wanted, key_file),
        systems=[],
        live_dirs=[],
        staging=ctx.layout.root.absolute() / "dr" / "staging" / new_backup_id(ctx.clock()),
        ctx=rebuilt,
    )
    # the lost host's local repository does not answer: its backups are in the copies
    boot.catalog = sync_catalog(rebuilt, policies, skip_unreadable=True)
    boot.waves = _waves(policies, chosen)
    boot.stack = chosen.name if chosen else None
    by_name = {p.name: p for p in policies}
    for wave in boot.waves:
        for name in wave:
            boot.systems.append(_plan_system(rebuilt, by_name[name], boot))
    if not write:
        shutil.rmtree(where, ignore_errors=True)
    boot.started_at, boot.plan_seconds = started_at, round(time.monotonic() - began, 3)
    return boot


def _waves(policies: list[PolicyBase], stack: Stack | None) -> list[list[str]]:
    """The stack's waves (its policies that were recovered), then every other policy in
    driver order (configuration, databases, models, search), one at a time."""
    names = {p.name for p in policies}
    waves = [[n for n in wave if n in names] for wave in stack.waves()] if stack else []
    waves = [wave for wave in waves if wave]
    placed = {name for wave in waves for name in wave}
    rest = sorted(
        (p for p in policies if p.name not in placed),
        key=lambda p: (driver_for(p).rebuild_rank, p.name),
    )
    return waves + [[p.name] for p in rest]


def _scratch(ctx: Context) -> Path:
    return private_dir(ctx.layout.root.absolute() / "dr")


def _plan_system(ctx: Context, policy: PolicyBase, boot: Bootstrap) -> SystemPlan:
    driver = driver_for(policy)
    read = reading(ctx, policy, driver)
    options = driver.rebuild_options(read.repo, read.backups, boot.staging / policy.name)
    if driver.new_host_makes_live_dir and policy.live_data and not policy.live_data.exists():
        boot.live_dirs.append(policy.live_data)
    plan = plan_restore(ctx, policy, options, read=read)
    newest = max((m.finished_at for m in read.backups.all), default=None)
    if newest is not None and (boot.last_seen is None or newest > boot.last_seen):
        boot.last_seen = newest
    window = read.backups.window(read.repo)  # the newest point: what the options reach
    return SystemPlan(policy, plan, window.latest if window else plan.manifest.finished_at)


def _needs(
    policies: list[PolicyBase],
    recovered: list[RecoveredPolicy],
    wanted_keys: list[Path],
    key_file: Path | None,
) -> list[str]:
    """What the operator must provide before the restores can run."""
    needs = []
    for item in recovered:
        for key in item.redacted:
            needs.append(
                f"{item.policy}: its {key} was kept as REDACTED: set it in {item.policy_file} "
                "(or use a *_file / ${VAR})"
            )
    for policy in policies:
        for path in _files_named(policy.model_dump()):
            if not Path(path).exists() and (key_file is None or Path(path) not in wanted_keys):
                needs.append(f"{policy.name}: {path} is not on this host")
    return sorted(set(needs))


def _files_named(data: Any) -> list[str]:
    """Every ``*_file`` value in a policy (password files, key files, certificates)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key.endswith("_file") and isinstance(value, (str, Path)) and value:
                found.append(str(value))
            else:
                found.extend(_files_named(value))
    elif isinstance(data, list):
        for value in data:
            found.extend(_files_named(value))
    return found


@dataclass
class SystemResult:
    policy: str
    driver: str
    backup_id: str
    state: str = "not started"
    seconds: float = 0.0
    recovery_point: str | None = None
    rpo_seconds: float | None = None
    report: str | None = None
    read_from: list[str] = field(default_factory=list)
    healed: int = 0
    error: str | None = None
    config_files: dict[str, list[str]] | None = None


@dataclass
class DrReport:
    dr_id: str
    url: str
    started_at: str
    finished_at: str
    rto_seconds: float
    last_seen: str | None
    passed: bool
    systems: list[SystemResult]
    setup: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_bootstrap(ctx: Context, boot: Bootstrap) -> DrReport:
    """Restore every system of the plan in order, then write the DR report. A failed
    restore (undone by its own rollback) stops the rebuild: the systems after it are
    listed as not started. Returns the report (``passed`` False when one failed)."""
    started_at, started = boot.started_at or ctx.clock(), time.monotonic()
    dr_id = new_backup_id(started_at)
    for path in boot.live_dirs:
        ensure_datadir(path, write=True)
    results = {
        s.policy.name: SystemResult(s.policy.name, s.policy.driver, s.plan.manifest.backup_id)
        for s in boot.systems
    }
    for wave in boot.waves:
        with ThreadPoolExecutor(max_workers=len(wave)) as pool:
            done = list(pool.map(lambda n: _restore(ctx, boot, n, results[n]), wave))
        if not all(done):
            break  # the waves after it are not started
    failed = any(r.state == "failed" for r in results.values())
    finished_at = ctx.clock()
    dr = DrReport(
        dr_id=dr_id,
        url=boot.url,
        started_at=started_at.isoformat(),
        finished_at=finished_at.isoformat(),
        rto_seconds=round(boot.plan_seconds + time.monotonic() - started, 3),
        last_seen=boot.last_seen.isoformat() if boot.last_seen else None,
        passed=not failed,
        systems=[results[s.policy.name] for s in boot.systems],
        setup=[r.to_dict() for r in boot.recovered],
    )
    _write_report(ctx, dr)
    return dr


def _restore(ctx: Context, boot: Bootstrap, name: str, result: SystemResult) -> bool:
    """Restore one system into ``result``; return whether it completed."""
    system = boot.system(name)
    began = time.monotonic()
    try:
        report = run_restore(boot.ctx, system.plan)
    except (RunbookFailed, BackupctlError) as exc:
        result.state, result.error = "failed", str(exc).splitlines()[0]
        result.seconds = round(time.monotonic() - began, 3)
        log.error("rebuild stopped", policy=name, error=str(exc))
        return False
    target = system.plan.options.target()
    if not system.plan.options.in_place and target is not None:
        placed, left = place_config_files(target, write=True)
        result.config_files = {"placed": placed, "left": left}
    point = system.point
    result.state, result.seconds = report.state, round(time.monotonic() - began, 3)
    result.recovery_point = point.isoformat()
    if boot.last_seen is not None:
        result.rpo_seconds = round(max(0.0, (boot.last_seen - point).total_seconds()), 3)
    result.report = str(ctx.layout.restore_report(report.run_id))
    result.read_from, result.healed = report.read_from, len(report.healed)
    return report.state == "completed"


def report_path(ctx: Context, dr_id: str, fmt: str = "json") -> Path:
    return ctx.layout.root / "dr" / f"{dr_id}.{fmt}"


def _write_report(ctx: Context, dr: DrReport) -> None:
    private_dir(ctx.layout.root / "dr")
    write_atomic(report_path(ctx, dr.dr_id), json.dumps(dr.to_dict(), indent=2) + "\n")
    write_atomic(report_path(ctx, dr.dr_id, "md"), to_markdown(dr))


def to_markdown(dr: DrReport) -> str:
    lines = [
        f"# Rebuild {dr.dr_id} from {dr.url}",
        "",
        f"- result: **{'PASSED' if dr.passed else 'FAILED'}**",
        f"- started {dr.started_at}, finished {dr.finished_at}: RTO "
        f"{human_duration(dr.rto_seconds)}",
        f"- the newest backup the repository had of the lost host: {dr.last_seen}",
        "",
        "| system | driver | backup | recovery point | RPO | time | state | read from |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    for s in dr.systems:
        rpo = human_duration(s.rpo_seconds) if s.rpo_seconds is not None else "-"
        lines.append(
            f"| {s.policy} | {s.driver} | {s.backup_id} | {s.recovery_point or '-'} | {rpo} | "
            f"{human_duration(s.seconds)} | {s.state} | {', '.join(s.read_from) or '-'} |"
        )
    for s in dr.systems:
        if s.error:
            lines.append(f"\n- {s.policy} failed: {s.error}")
        if s.config_files and s.config_files["left"]:
            lines.append(
                f"\n- {s.policy}: left as they were (other content there): "
                + ", ".join(s.config_files["left"])
            )
    return "\n".join(lines) + "\n"


def describe(boot: Bootstrap) -> list[str]:
    """The plan, for people."""
    lines = [f"rebuild from {boot.url}: policies and hooks into {boot.root}"]
    for item in boot.recovered:
        lines.append(f"  policy {item.policy}: {item.policy_file} ({len(item.hooks)} hook file(s))")
    for key in boot.keys:
        lines.append(f"  key: {key} (the key given, where the policies read it)")
    for path in boot.live_dirs:
        lines.append(f"  create the empty datadir {path} (as a new host's package would)")
    if boot.stack:
        lines.append(f"  order and parallel groups from stack {boot.stack}")
    total = 0
    for number, system in enumerate(boot.systems, 1):
        m = system.plan.manifest
        total += m.stored_bytes
        order = system.plan.reading.order() if system.plan.reading else []
        estimate = system.plan.estimate_seconds
        eta = f"about {human_duration(estimate)}" if estimate is not None else "ETA unknown"
        lines.append(
            f"{number}. {system.policy.name} ({system.policy.driver}): backup {m.backup_id}, "
            f"{human_bytes(m.stored_bytes)} stored, {system.plan.options.where()}, to "
            f"{system.point.isoformat()}, read from {', '.join(order) or 'its repository'}; "
            f"{eta}"
        )
    projected, unknown = boot.eta_seconds()
    never = f" (never measured: {', '.join(unknown)})" if unknown else ""
    lines.append(
        f"in all {human_bytes(total)} to read; about {human_duration(projected)} from past "
        f"restores and drills{never}"
    )
    for need in boot.needs:
        lines.append(f"NEEDED: {need}")
    return lines
