"""``backupctl demo``."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import click

from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.cli.restore_cmd import print_report
from backupctl.drills.report import seconds_text
from backupctl.errors import VerificationFailed
from backupctl.layout import StateLayout
from backupctl.operations.context import Context
from backupctl.operations.verify import raise_if_failed
from backupctl.units import human_bytes

DEFAULT_ES_SNAPSHOT_DIR = "/var/backups/es"


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to put the throwaway server and repository (default: a new temp dir).",
)
@click.option(
    "--size-mb",
    type=click.FloatRange(min=1),
    default=50,
    show_default=True,
    help="How much sample data to create.",
)
@click.pass_obj
def demo(app: AppContext, workdir: Path | None, size_mb: float) -> None:
    """A self-contained tour on a throwaway MariaDB and a local repository."""
    from backupctl.demo.mariadb import run_demo  # (here: every other command starts faster)
    from backupctl.demo.models import run_model_demo

    workdir = workdir or Path(tempfile.mkdtemp(prefix="backupctl-demo-"))
    result = run_demo(workdir, size_mb, click.echo, progress=app.ops.progress)
    manifest = result.manifest
    click.echo("")
    click.echo(
        f"backup {manifest.backup_id}: {human_bytes(manifest.raw_bytes)} streamed, "
        f"{human_bytes(manifest.stored_bytes)} stored (zstd), "
        f"{(manifest.finished_at - manifest.started_at).total_seconds():.1f}s"
    )
    render.checks(result.checks)
    incremental = result.incremental
    click.echo(
        f"incremental {incremental.backup_id} on it: {human_bytes(incremental.raw_bytes)} "
        f"streamed, {human_bytes(incremental.stored_bytes)} stored"
    )
    report = result.restore_report
    point = report.recovery_point
    click.echo("")
    started = f"{report.backup.kind} {report.backup.backup_id}".strip()
    click.echo(f"restore {report.run_id} from {started}: {report.state} in {report.seconds:.1f}s")
    print_report(report)
    click.echo(f"recovered to {point.describe() if point else '-'}")
    click.echo(f"the wrecked datadir is kept at {report.aside}")
    raise_if_failed(manifest, result.checks)
    if not result.restored_matches:
        raise VerificationFailed("the restored tables differ from those before the accident")
    click.echo("")
    models, matches = run_model_demo(workdir, click.echo)
    click.echo(f"restore {models.run_id}: {models.state} in {models.seconds:.1f}s")
    print_report(models)
    if not matches:
        raise VerificationFailed("the rolled back model differs from the stored version")
    _elasticsearch(workdir)
    _drill(app, result.policy_file, workdir / "state")
    _rebuild(app, workdir)
    _suggest(workdir, point.time_local if point is not None else None)


def _suggest(workdir: Path, moment: str | None) -> None:
    """Commands to try on what the demo left: the rebuilt host's policies and state."""
    policies, state = workdir / "rebuilt" / "policies", workdir / "rebuilt" / "state"
    click.echo("")
    click.echo(f"repository: {workdir / 'repository'}")
    click.echo(f"policies:   {policies} (rebuilt from the repository)")
    click.echo("try:")
    base = f"backupctl --policies {policies} --state-dir {state}"
    click.echo(f"  {base} list   # the chain: full -> incremental")
    click.echo(f"  {base} verify demo-db --deep")
    click.echo(f"  {base} restore demo-db --dry-run")
    if moment is not None:
        local = datetime.fromisoformat(moment)
        click.echo(f'  {base} restore demo-db --to-time "{local:%Y-%m-%d %H:%M:%S}" --dry-run')


def _rebuild(app: AppContext, workdir: Path) -> None:
    """End with the worst day: the server lost, rebuilt from the repository alone."""
    from backupctl.demo.rebuild import rebuild

    click.echo("")
    report = rebuild(workdir, click.echo, progress=app.ops.progress)
    for system in report.systems:
        click.echo(
            f"  {system.policy:<12} {system.state} in {system.seconds:.1f}s, recovered to "
            f"{system.recovery_point}"
        )
    click.echo(f"rebuild {report.dr_id}: PASSED, RTO {seconds_text(report.rto_seconds)}")
    click.echo(f"rebuild report: {workdir / 'rebuilt' / 'state' / 'dr' / report.dr_id}.md")


def _drill(app: AppContext, policy_file: Path, state_dir: Path) -> None:
    """End with a recovery drill of the demo database, like the quarterly one."""
    from backupctl.operations.drill import run_and_store
    from backupctl.policy.loader import load_policies

    policy = load_policies(policy_file)[0]
    click.echo("")
    click.echo(f"recovery drill of {policy.name}: restore into a sandbox, verify, measure")
    ctx = Context(StateLayout(state_dir), progress=app.ops.progress)
    report = run_and_store(ctx, policy)
    click.echo(
        f"drill {report.drill_id}: {report.verdict}, "
        f"RTO {seconds_text(report.rto_seconds)}, RPO {seconds_text(report.rpo_seconds)}"
    )
    click.echo(f"drill report: {report.html_report}")
    if not report.passed:
        raise VerificationFailed(f"the demo's drill failed: {report.reason}")


def _elasticsearch(workdir: Path) -> None:
    url = os.environ.get("BACKUPCTL_DEMO_ES_URL")
    click.echo("")
    if not url:
        click.echo(
            "Elasticsearch skipped: set BACKUPCTL_DEMO_ES_URL=http://HOST:9200 (and "
            "BACKUPCTL_DEMO_ES_SNAPSHOT_DIR, a directory in the cluster's path.repo, "
            f"default {DEFAULT_ES_SNAPSHOT_DIR}) to include it"
        )
        return
    from backupctl.demo.elasticsearch import run_es_demo

    snapshot_dir = os.environ.get("BACKUPCTL_DEMO_ES_SNAPSHOT_DIR", DEFAULT_ES_SNAPSHOT_DIR)
    report, documents_match = run_es_demo(workdir, url, snapshot_dir, click.echo)
    click.echo(f"restore {report.run_id}: {report.state} in {report.seconds:.1f}s")
    print_report(report)
    if not documents_match:
        raise VerificationFailed("the restored index does not have the snapshot's documents")
