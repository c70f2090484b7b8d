"""``backupctl list [POLICY]``."""

from __future__ import annotations

import json
from datetime import datetime

import click

from backupctl.catalog.manifest import Manifest
from backupctl.cli import render
from backupctl.cli.context import AppContext
from backupctl.drivers.registry import driver_class, driver_for
from backupctl.errors import BackupctlError, UsageError
from backupctl.storage.keys import NAME_RE
from backupctl.units import human_bytes


@click.command("list")
@click.argument("policy", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the backups as JSON.")
@click.pass_obj
def list_backups(app: AppContext, policy: str | None, as_json: bool) -> None:
    """List backups in the catalog, oldest first (failed ones marked FAILED)."""
    if policy is not None and not NAME_RE.match(policy):  # the catalog holds only valid names
        raise UsageError(f"{policy!r} is not a policy name (lowercase letters, digits, '-', '_')")
    catalog = app.catalog()
    copies = catalog.copies(policy)  # backup id -> the other repositories holding it
    only_copied = catalog.only_in_copies(policy) if copies else []
    if as_json:  # the stored documents as they are: fast with many thousands
        docs = [raw.strip() for raw in catalog.raw(policy)]
        if copies:  # ... with the copies each one has, and what only copies hold
            docs = [_with_copies(doc, copies, True) for doc in docs]
            # pruned from the first repository by age: older than what it holds
            docs = [_with_copies(m.to_json(), copies, False) for m in only_copied] + docs
        click.echo("[" + ",".join(docs) + "]")
        return
    manifests = sorted(
        catalog.list(policy) + only_copied, key=lambda m: (m.finished_at, m.backup_id)
    )
    pruned = {(m.policy, m.backup_id) for m in only_copied}
    if not manifests:
        click.echo(
            "no backups in the catalog"
            + (f" for policy {policy}" if policy else "")
            + " (on a new host, run `backupctl catalog sync`)"
        )
        return
    rows: list[tuple[str, ...]] = [
        (
            m.policy,
            m.backup_id,
            m.kind,
            render.human_time(m.finished_at),
            f"{(m.finished_at - m.started_at).total_seconds():.0f}s",
            human_bytes(m.raw_bytes),
            human_bytes(m.stored_bytes),
            "ok" if m.restorable else "FAILED",
            ("only in copies; " if (m.policy, m.backup_id) in pruned else "") + _note(m),
        )
        for m in manifests
    ]
    headers: tuple[str, ...] = (
        "POLICY",
        "BACKUP ID",
        "TYPE",
        "FINISHED",
        "TOOK",
        "SIZE",
        "STORED",
        "STATE",
        "NOTE",
    )
    if copies:
        headers = (*headers[:-1], "COPIES", headers[-1])
        rows = [
            (*row[:-1], ",".join(sorted(copies.get((m.policy, m.backup_id), {}))) or "-", row[-1])
            for m, row in zip(manifests, rows, strict=True)
        ]
    render.table(headers, rows)
    for m in manifests:
        if m.failure is not None:
            click.echo(f"  {m.backup_id} is not restorable: {m.failure}")
    click.echo("")
    _chains(manifests)
    _windows(app, manifests)


def _with_copies(
    doc: str, copies: dict[tuple[str, str], dict[str, datetime]], in_first: bool
) -> str:
    data = json.loads(doc)
    held = copies.get((data.get("policy"), data.get("backup_id")), {})
    data["copies"] = {name: at.isoformat() for name, at in sorted(held.items())}
    data["in_first_repository"] = in_first
    return json.dumps(data, sort_keys=True)


def _note(manifest: Manifest) -> str:
    try:
        return driver_class(manifest.driver).note(manifest)
    except BackupctlError:
        return ""


def _chains(manifests: list[Manifest]) -> None:
    """Print each policy's chains: base -> increments, with sizes and what a restore of the
    newest link reads."""
    printed = False
    for name in sorted({m.policy for m in manifests}):
        own = [m for m in manifests if m.policy == name]
        try:
            chains = driver_class(own[0].driver).chains(own)
        except BackupctlError:
            continue
        for links in chains:
            steps = " -> ".join(f"{m.kind} {human_bytes(m.stored_bytes)}" for m in links)
            total = human_bytes(sum(m.stored_bytes for m in links))
            click.echo(
                f"{name}: chain of {links[0].backup_id}: {steps} "
                f"({len(links)} links, {total} read to restore {links[-1].backup_id})"
            )
            printed = True
    if printed:
        click.echo("")


def _windows(app: AppContext, manifests: list[Manifest]) -> None:
    """Print each listed policy's recoverability window (needs its policy and repository):
    the same window ``status`` shows and the metrics export."""
    for name in sorted({m.policy for m in manifests}):
        try:
            policy = app.policy(name)
            driver = driver_for(policy)
            window = app.ops.backups(policy, driver).window(app.ops.repository(policy))
        except BackupctlError as exc:
            click.echo(f"{name}: recoverability window unknown ({exc})")
            continue
        if window is None:
            continue
        line = (
            f"{name}: recoverable from {render.human_time(window.earliest)} "
            f"to {render.human_time(window.latest)}"
        )
        if window.gap:
            line += f" (the chain stops there: {window.gap})"
        click.echo(line)
