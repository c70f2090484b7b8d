"""The local SQLite catalog: a cache of manifests, rebuilt from repositories at any time."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from backupctl.catalog.manifest import Manifest, parse_manifest
from backupctl.catalog.query import PolicyBackups, RecoveryModel
from backupctl.statefile import open_private, private_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backups (
    policy TEXT NOT NULL,
    backup_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    driver TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    raw_bytes INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL,
    repository TEXT NOT NULL,
    manifest TEXT NOT NULL,
    PRIMARY KEY (policy, backup_id)
);
CREATE INDEX IF NOT EXISTS backups_by_time ON backups (policy, kind, finished_at);
CREATE TABLE IF NOT EXISTS copies (
    policy TEXT NOT NULL,
    backup_id TEXT NOT NULL,
    repository TEXT NOT NULL,
    copied_at TEXT NOT NULL,
    manifest TEXT,
    PRIMARY KEY (policy, backup_id, repository)
);
"""


class Catalog:
    """Index of complete backups, keyed by (policy, backup_id)."""

    def __init__(self, path: Path):
        self.path = path
        private_dir(path.parent)
        # SQLite would create it 0644 minus the umask; its -journal/-wal files copy this mode
        with contextlib.suppress(FileExistsError):
            open_private(path, "wb", exclusive=True).close()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    @staticmethod
    def _row(manifest: Manifest, repository: str) -> tuple[object, ...]:
        return (
            manifest.policy,
            manifest.backup_id,
            manifest.kind,
            manifest.driver,
            manifest.started_at.isoformat(),
            manifest.finished_at.isoformat(),
            manifest.raw_bytes,
            manifest.stored_bytes,
            repository,
            manifest.to_json(),
        )

    def record(self, manifest: Manifest, repository: str) -> None:
        """Add or replace one backup."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO backups VALUES (?,?,?,?,?,?,?,?,?,?)",
                self._row(manifest, repository),
            )

    def replace_repository(self, repository: str, manifests: Iterable[Manifest]) -> int:
        """Make the catalog's view of ``repository`` exactly ``manifests``; return the count."""
        rows = [self._row(m, repository) for m in manifests]
        with self._connect() as db:
            db.execute("DELETE FROM backups WHERE repository = ?", (repository,))
            db.executemany("INSERT OR REPLACE INTO backups VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    def ids(self, policy: str, repository: str | None = None) -> list[str]:
        """The ids of ``policy``'s backups (recorded from ``repository`` when given)."""
        query, args = "SELECT backup_id FROM backups WHERE policy = ?", [policy]
        if repository is not None:
            query, args = query + " AND repository = ?", [*args, repository]
        with self._connect() as db:
            return [str(row[0]) for row in db.execute(query, args).fetchall()]

    def backups(
        self, policy: str, model: RecoveryModel, last_unchanged: datetime | None = None
    ) -> PolicyBackups:
        """``policy``'s backups read through its driver's rules (``model``)."""
        return PolicyBackups(policy, self.list(policy), model, last_unchanged)

    def forget(self, policy: str, backup_id: str) -> None:
        with self._connect() as db:
            db.execute(
                "DELETE FROM backups WHERE policy = ? AND backup_id = ?", (policy, backup_id)
            )

    def replace_copies(
        self,
        policy: str,
        repository: str,
        held: dict[str, datetime],
        manifests: dict[str, Manifest] | None = None,
    ) -> None:
        """Make the catalog's view of copy ``repository`` of ``policy`` exactly the backups
        in ``held``: one already recorded keeps its time, another gets the one given
        (backup id → when it was copied there, or a stand-in such as its finish time);
        ``manifests`` (backup id → manifest as stored there) are kept for retention."""
        with self._connect() as db:
            known = {
                str(row[0])
                for row in db.execute(
                    "SELECT backup_id FROM copies WHERE policy = ? AND repository = ?",
                    (policy, repository),
                )
            }
            db.executemany(
                "DELETE FROM copies WHERE policy = ? AND backup_id = ? AND repository = ?",
                [(policy, bid, repository) for bid in known - set(held)],
            )
            db.executemany(
                "INSERT OR IGNORE INTO copies VALUES (?,?,?,?,NULL)",
                [(policy, bid, repository, at.isoformat()) for bid, at in held.items()],
            )
            db.executemany(
                "UPDATE copies SET manifest = ? WHERE policy = ? AND backup_id = ? "
                "AND repository = ?",
                [
                    (m.to_json(), policy, bid, repository)
                    for bid, m in (manifests or {}).items()
                    if bid in held
                ],
            )

    def copy_manifests(self, policy: str, repository: str) -> dict[str, Manifest]:
        """The manifests kept of ``policy``'s backups in copy ``repository``."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT backup_id, manifest FROM copies WHERE policy = ? AND repository = ? "
                "AND manifest IS NOT NULL",
                (policy, repository),
            ).fetchall()
        where = f"catalog {self.path} (copies in {repository})"
        return {str(bid): parse_manifest(str(raw).encode(), where) for bid, raw in rows}

    def only_in_copies(self, policy: str | None = None) -> list[Manifest]:
        """Backups (of ``policy``, default all) the first repository no longer holds and a
        copy still does (pruned locally, kept off-site), oldest first: each once, with the
        manifest a copy keeps."""
        query = (
            "SELECT c.manifest FROM copies c WHERE c.manifest IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM backups b WHERE b.policy = c.policy AND b.backup_id = c.backup_id)"
        )
        args: list[str] = []
        if policy is not None:
            query, args = query + " AND c.policy = ?", [policy]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY c.repository", args).fetchall()
        where = f"catalog {self.path} (copies)"
        found: dict[tuple[str, str], Manifest] = {}
        for (raw,) in rows:
            manifest = parse_manifest(str(raw).encode(), where)
            found.setdefault((manifest.policy, manifest.backup_id), manifest)
        return sorted(found.values(), key=lambda m: (m.finished_at, m.backup_id))

    def copies(self, policy: str | None = None) -> dict[tuple[str, str], dict[str, datetime]]:
        """Where backups (of ``policy``, default all) are copied: (policy, backup id) →
        {repository: when it was copied there}."""
        query, args = "SELECT policy, backup_id, repository, copied_at FROM copies", []
        if policy is not None:
            query, args = query + " WHERE policy = ?", [policy]
        with self._connect() as db:
            rows = db.execute(query, args).fetchall()
        held: dict[tuple[str, str], dict[str, datetime]] = {}
        for name, backup_id, repository, at in rows:
            held.setdefault((str(name), str(backup_id)), {})[str(repository)] = (
                datetime.fromisoformat(at)
            )
        return held

    def raw(self, policy: str | None = None, kind: str | None = None) -> list[str]:
        """The stored manifest JSON documents, oldest first (no parsing: for --json)."""
        query, args = "SELECT manifest FROM backups WHERE 1=1", list[str]()
        if policy:
            query, args = query + " AND policy = ?", [*args, policy]
        if kind:
            query, args = query + " AND kind = ?", [*args, kind]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY finished_at, backup_id", args).fetchall()
        return [str(row[0]) for row in rows]

    def list(self, policy: str | None = None, kind: str | None = None) -> list[Manifest]:
        """Return manifests, oldest first."""
        return [
            parse_manifest(raw.encode(), f"catalog {self.path}") for raw in self.raw(policy, kind)
        ]
