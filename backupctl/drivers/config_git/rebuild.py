"""Where a restore, a drill or ``verify --deep`` reads a commit from: the policy's Git
directory when it holds the commit, else a bare repository rebuilt from the backups'
bundles (``bundles.chain``), read through the ``Repository`` the restore was given.

That repository may be a mirror over the policy's repositories (``storage.mirror``): each
bundle comes from whichever holds it sound. A bundle read whole from one repository and
found corrupt at its end (``ObjectCorrupt``: the mirror marked that copy bad) is read
again, from the next. Every bundle's size and sha256 are checked against its manifest
before git sees it, and git checks every object it takes in (``transfer.fsckObjects``).

The rebuilt repository lives in a scratch directory of the state directory's work area
(never /tmp: a killed run's is found and replaced by the next), built when first needed
(a plan builds nothing: ``--dry-run`` downloads nothing) and removed by the runbook's
last step, or by its compensation when a step fails.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import structlog

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.config_git import bundles, extract
from backupctl.drivers.config_git.details import ConfigGitDetails
from backupctl.drivers.config_git.gitrepo import GitRepository
from backupctl.errors import VerificationFailed
from backupctl.statefile import private_dir
from backupctl.storage.base import Repository
from backupctl.storage.mirror import ObjectCorrupt

log = structlog.get_logger()

#: reads of one bundle: a mirror serves it from another repository after a corrupt one
_ATTEMPTS = 4


class Rebuild:
    """A bare repository holding the commits of ``links`` (a bundle chain, oldest first),
    rebuilt in ``root`` from their bundles in ``repo``; HEAD on ``branch``."""

    def __init__(self, repo: Repository, links: list[Manifest], root: Path, branch: str):
        self.repo, self.links, self.root, self.branch = repo, links, root, branch
        self.git = GitRepository(root / "history.git")

    @property
    def commit(self) -> str:
        return ConfigGitDetails.of(self.links[-1]).commit

    def describe(self) -> str:
        size = sum(a.stored_bytes for m in self.links if (a := bundles.bundle_of(m)))
        return (
            f"rebuild the history of commit {self.commit[:12]} in {self.root} from the "
            f"bundles of {len(self.links)} backup(s) ({size} bytes), oldest first"
        )

    def ensure(self) -> GitRepository:
        """The rebuilt repository: the one built earlier in this run when it holds the
        commit, else built again from nothing. Raises VerificationFailed / ToolError /
        RepositoryError naming the bundle that failed."""
        if self.git.holds(self.commit):
            return self.git
        self.remove()
        private_dir(self.root)
        self.git.ensure(self.branch.removeprefix("refs/heads/"))
        incoming = self.root / bundles.BUNDLE
        for link in self.links:
            _download(self.repo, link, incoming)
            self.git.fetch_bundle(incoming)
            incoming.unlink()
            commit = ConfigGitDetails.of(link).commit
            if not self.git.holds(commit):
                raise VerificationFailed(
                    f"the bundle of backup {link.backup_id} does not hold its commit {commit[:12]}"
                )
        log.info("history rebuilt from bundles", commit=self.commit, bundles=len(self.links))
        return self.git

    def remove(self) -> str:
        if not self.root.exists():
            return f"{self.root} already gone"
        shutil.rmtree(self.root)
        return f"removed {self.root}"


def _download(repo: Repository, link: Manifest, path: Path) -> None:
    """Write ``link``'s bundle to ``path``, checked against its manifest."""
    artifact = bundles.bundle_of(link)
    assert artifact is not None  # bundles.chain gave only links that have one
    for attempt in range(1, _ATTEMPTS + 1):
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "wb") as fh:
                for chunk in repo.iter_read(artifact.key):
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
        except ObjectCorrupt:
            if attempt == _ATTEMPTS:
                raise
            log.warning("bundle corrupt in one repository: reading it again", key=artifact.key)
            continue
        if (size, digest.hexdigest()) != (artifact.stored_bytes, artifact.sha256):
            raise VerificationFailed(
                f"{repo.url}/{artifact.key} does not match its manifest (sha256/size): "
                "corrupt bundle"
            )
        return


class CommitSource:
    """The commit a restore brings back (``only``: one path of it) and the repository it
    is read from: ``git`` (the policy's Git directory), or ``rebuild`` when given.

    The selection is made when first asked for: from the Git directory, a plan asks at
    once (a bad ``--path`` is refused before anything runs, and the plan says what it
    writes); from bundles, only once the history is rebuilt, by a step."""

    def __init__(
        self, commit: str, only: Path | None, git: GitRepository, rebuild: Rebuild | None = None
    ):
        self.commit, self.only, self._git, self.rebuild = commit, only, git, rebuild
        self._chosen: extract.Selection | None = None

    @property
    def git(self) -> GitRepository:
        return self.rebuild.ensure() if self.rebuild is not None else self._git

    def chosen(self) -> extract.Selection:
        if self._chosen is None:
            self._chosen = extract.select(self.git, self.commit, self.only)
        return self._chosen

    def describe(self) -> str:
        if self._chosen is not None:
            return self._chosen.describe()
        under = f" under {self.only}" if self.only is not None else ""
        return f"the files{under} of commit {self.commit[:12]} (from the rebuilt history)"
