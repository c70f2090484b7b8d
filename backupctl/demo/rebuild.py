"""The demo's last act: the server is lost, and ``dr bootstrap`` rebuilds it from the
repository alone into a fresh directory (policies, hooks and state there; the data back
where the policies say)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from backupctl.errors import VerificationFailed
from backupctl.layout import StateLayout
from backupctl.operations.context import Context
from backupctl.operations.dr import DrReport, open_source, plan_bootstrap, run_bootstrap
from backupctl.policy.loader import load_policies
from backupctl.progress import ProgressFactory, no_progress

Say = Callable[[str], None]


def lose_the_server(workdir: Path) -> list[Path]:
    """Move away everything of the demo's "server" but its repository and its secrets:
    policies, hooks, state, the datadir, the served model. Returns where each went."""
    lost = workdir / "lost"
    lost.mkdir(exist_ok=True)
    data = [p.live_data for p in load_policies(workdir / "policies") if p.live_data]
    moved = []
    for path in [workdir / "policies", workdir / "hooks", workdir / "state", *data]:
        if path is not None and path.exists():
            target = lost / "-".join(path.relative_to(workdir).parts)
            shutil.move(path, target)
            moved.append(target)
    return moved


def rebuild(workdir: Path, say: Say, progress: ProgressFactory = no_progress) -> DrReport:
    """Lose the demo's server, then rebuild it from ``workdir/repository`` into
    ``workdir/rebuilt``; stop the rebuilt server again. Raises VerificationFailed when the
    rebuild did not pass, BackupctlError subclasses."""
    lost = lose_the_server(workdir)
    say(
        "14. the server is lost: policies, hooks, state, datadir and served model are gone "
        f"(moved to {lost[0].parent}, for a look at what the lost server had)"
    )
    fresh = workdir / "rebuilt"
    say(
        f"15. dr bootstrap file://{workdir / 'repository'} --target-root {fresh}: "
        "policies and hooks from the repository, the catalog rebuilt, every system restored"
    )
    ctx = Context(StateLayout(fresh / "state"), progress=progress)
    source = open_source(f"file://{workdir / 'repository'}", None, None)
    boot = plan_bootstrap(ctx, source, fresh, None, write=True)
    if boot.needs:
        raise VerificationFailed("the rebuild needs: " + "; ".join(boot.needs))
    try:
        report = run_bootstrap(ctx, boot)
    finally:
        stop = fresh / "hooks" / "stop.sh"  # the rebuilt server: a throwaway one too
        if stop.exists():
            subprocess.run([str(stop)], check=False, timeout=120)
    if not report.passed:
        failed = "; ".join(f"{s.policy}: {s.error}" for s in report.systems if s.error)
        raise VerificationFailed(f"the demo's rebuild failed: {failed}")
    return report
