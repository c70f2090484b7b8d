"""What a driver writes one backup through: its artifacts, streamed compressed and
checksummed into the repository, each committed only when complete."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

from backupctl.catalog.manifest import Artifact, Manifest, backup_prefix
from backupctl.layout import StateLayout
from backupctl.pipeline import CompressingWriter
from backupctl.policy.common import PolicyBase
from backupctl.progress import ProgressFactory, no_progress
from backupctl.statefile import private_dir
from backupctl.storage import keys
from backupctl.storage.base import ObjectWriter, Repository


class ArtifactWriter:
    """Context manager streaming one compressed artifact; committed only on clean exit."""

    def __init__(
        self, session: BackupSession, name: str, level: int, threads: int, size_hint: int | None
    ):
        self.session, self.name = session, name
        self.key = keys.join(session.prefix, name)
        self._writer: ObjectWriter = session.repo.open_write(self.key, size_hint)
        self._compressor = CompressingWriter(self._writer, level=level, threads=threads)

    def write(self, data: bytes) -> None:
        self._compressor.write(data)

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._writer.abort()
            return
        try:
            stats = self._compressor.finish()
            self._writer.commit()
        except BaseException:
            self._writer.abort()
            raise
        self.session.artifacts.append(
            Artifact(
                name=self.name,
                key=self.key,
                raw_bytes=stats.raw_bytes,
                stored_bytes=stats.stored_bytes,
                sha256=stats.sha256,
            )
        )


@dataclass
class BackupSession:
    """What a driver gets to write one backup."""

    repo: Repository
    policy: PolicyBase
    kind: str
    backup_id: str
    started_at: datetime
    layout: StateLayout
    progress: ProgressFactory = no_progress
    artifacts: list[Artifact] = field(default_factory=list)
    #: the backup this one builds on (an incremental's parent), chosen by the driver
    basis: Manifest | None = None
    #: why this kind is taken instead of the one asked for (None: it was asked for)
    instead: str | None = None
    tool_versions: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return backup_prefix(self.policy.name, self.kind, self.backup_id)

    @contextmanager
    def work_dir(self, name: str) -> Iterator[Path]:
        """A private directory for this backup's temporary files, in the state directory
        (not /tmp, where a ``kill -9`` would leave them for good): emptied first (what a
        killed run of the same kind left; its lock lane is held, so no other run uses it)
        and removed afterwards."""
        path = self.layout.work(self.policy.name, name)
        shutil.rmtree(path, ignore_errors=True)
        private_dir(path)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def artifact(
        self, name: str, level: int = 3, threads: int = 0, size_hint: int | None = None
    ) -> ArtifactWriter:
        """Open a compressed, checksummed artifact called ``name`` (e.g. ``data.mbstream.zst``);
        ``size_hint``: at most about this many bytes will be stored, when known."""
        return ArtifactWriter(self, name, level, threads, size_hint)
