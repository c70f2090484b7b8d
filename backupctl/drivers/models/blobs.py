"""Content-addressed file storage: each distinct file content is stored once, as
``<policy>/blobs/<sha256[:2]>/<sha256>.zst``, whichever versions share it."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backupctl.catalog.manifest import Artifact
from backupctl.drivers.models.tree import CHUNK, Entry
from backupctl.errors import VerificationFailed
from backupctl.pipeline import CompressingWriter, decompress
from backupctl.storage import keys
from backupctl.storage.base import Repository

BLOB_DIR = "blobs"


def blob_key(policy: str, sha256: str) -> str:
    return keys.join(policy, BLOB_DIR, sha256[:2], f"{sha256}.zst")


def upload_blob(repo: Repository, key: str, path: Path, expected: str, level: int) -> Artifact:
    """Compress ``path`` into ``key``; refuse it if its content no longer hashes to
    ``expected`` (it changed while we read it)."""
    digest = hashlib.sha256()
    writer = repo.open_write(key)
    try:
        compressor = CompressingWriter(writer, level=level, threads=1)
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                compressor.write(chunk)
        if digest.hexdigest() != expected:
            raise VerificationFailed(f"{path} changed while it was being stored; try again")
        stats = compressor.finish()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return Artifact(
        name=key,
        key=key,
        raw_bytes=stats.raw_bytes,
        stored_bytes=stats.stored_bytes,
        sha256=stats.sha256,
    )


def upload_many(
    repo: Repository, jobs: list[tuple[str, Path, str]], level: int, parallel: int
) -> list[Artifact]:
    """Upload (key, path, sha256) jobs, ``parallel`` at a time; return their artifacts."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(upload_blob, repo, k, p, s, level) for k, p, s in jobs]
        return [f.result() for f in futures]


def fetch_blob(repo: Repository, artifact: Artifact, entry: Entry, target: Path) -> None:
    """Write the file ``entry`` from its blob to ``target``, checking its sha256."""
    digest = hashlib.sha256()
    try:
        with open(target, "wb") as fh:
            for chunk in decompress(repo.iter_read(artifact.key), artifact.raw_bytes):
                digest.update(chunk)
                fh.write(chunk)
    except OSError as exc:  # e.g. a full disk: a write's error does not name the file
        raise OSError(exc.errno, f"{exc.strerror} writing {target}") from exc
    if digest.hexdigest() != entry.sha256:
        raise VerificationFailed(f"{entry.path}: stored content does not match its sha256")
