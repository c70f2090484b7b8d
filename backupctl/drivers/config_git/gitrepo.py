"""Git plumbing for the config-git driver, through the ``git`` command line.

Every call is an argument list (no shell) of ``git --git-dir=<bare repository>`` with a
clean environment: inherited ``GIT_*`` variables are dropped (a stray ``GIT_INDEX_FILE``
or ``GIT_WORK_TREE`` must not redirect anything) and neither the system's nor the
user's configuration is read (a ``commit.gpgSign`` or ``core.autocrlf`` there must not
change what is stored). File contents go in with ``hash-object --no-filters``: the
bytes as they are on disk, no attribute filters. Nothing secret is ever in argv.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from backupctl.errors import BackupFailed, ToolError
from backupctl.proc import require_tool, tail_text

LINK_MODE = "120000"
FILE_MODES = ("100644", "100755")

_CONFIG = (
    "core.protectNTFS=false",  # Linux file names such as "git~1" are fine here
    "core.protectHFS=false",
    "core.fsync=committed",  # objects and refs reach the disk before we say "stored"
    "commit.gpgSign=false",
    "gc.auto=0",  # never a surprise repack in the middle of a backup
)


@dataclass(frozen=True)
class TreeEntry:
    """One blob of a commit's tree: ``path`` like ``b"etc/nginx/nginx.conf"``."""

    mode: str
    sha: str
    path: bytes


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


class GitRepository:
    """A bare Git repository driven through ``git``'s plumbing commands."""

    def __init__(self, git_dir: Path):
        self.git_dir = git_dir
        self._git: str | None = None

    @property
    def git(self) -> str:
        if self._git is None:
            self._git = require_tool("git", "git")
        return self._git

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            LC_ALL="C",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_TERMINAL_PROMPT="0",
        )
        env.update(extra or {})
        return env

    def _argv(self, args: Iterable[str], bare: bool = True) -> list[str]:
        head = [self.git, f"--git-dir={self.git_dir}"] if bare else [self.git]
        for option in _CONFIG:
            head += ["-c", option]
        return [*head, *args]

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (0,),
        bare: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one git command. Raises ToolError (with git's own words) on another exit."""
        proc = subprocess.run(
            self._argv(args, bare),
            input=input,
            capture_output=True,
            env=self._env(env),
            check=False,
        )
        if proc.returncode not in ok:
            said = tail_text(proc.stderr.decode(errors="replace"), 5) or "no message"
            raise ToolError(
                f"git {args[0]} failed in {self.git_dir} (exit {proc.returncode}): {said}"
            )
        return proc

    def out(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        bare: bool = True,
    ) -> str:
        """Run a command and return its stdout as stripped text."""
        return self.run(*args, input=input, env=env, bare=bare).stdout.decode().strip()

    def version(self) -> str:
        return self.out("--version", bare=False).removeprefix("git version ")

    def ensure(self, branch: str, allowed: Iterable[str] = ()) -> str:
        """Create the bare repository (HEAD on ``branch``) unless it exists; return
        "created" or "existing". Raises BackupFailed when the directory holds something
        else than a bare repository (entries named in ``allowed`` excepted)."""
        if (self.git_dir / "HEAD").is_file():
            if self.out("rev-parse", "--is-bare-repository") != "true":
                raise BackupFailed(
                    f"{self.git_dir} is the Git directory of a checkout; config-git keeps "
                    "its history in a bare repository of its own"
                )
            return "existing"
        if self.git_dir.is_dir():
            others = sorted(p.name for p in self.git_dir.iterdir() if p.name not in allowed)
            if others:
                raise BackupFailed(
                    f"{self.git_dir} is not a Git repository and is not empty "
                    f"({', '.join(others[:5])}); config-git needs a directory of its own, "
                    "e.g. file:///var/backups/config-history.git"
                )
        self.run("init", "--bare", "--quiet", "--", str(self.git_dir), bare=False)
        self.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        return "created"

    def resolve(self, rev: str) -> str | None:
        """The commit ``rev`` names, or None when there is none."""
        proc = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", ok=(0, 1, 128))
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def holds(self, commit: str) -> bool:
        """True when this is a Git repository and ``commit``'s object is in it (whether
        it reads is for fsck to say: a damaged repository is not an absent one)."""
        if not (self.git_dir / "HEAD").is_file():
            return False
        return self.run("cat-file", "-e", commit, ok=(0, 1, 128)).returncode == 0

    def tree_of(self, commit: str) -> str:
        return self.out("rev-parse", "--verify", f"{commit}^{{tree}}")

    def is_ancestor(self, commit: str, descendant: str) -> bool:
        proc = self.run("merge-base", "--is-ancestor", commit, descendant, ok=(0, 1))
        return proc.returncode == 0

    def fsck(self) -> list[str]:
        """Check every object and its links (``git fsck --full --strict``); return the
        problems found (empty: the repository is intact). Dangling objects are no problem."""
        proc = self.run(
            "fsck", "--full", "--strict", "--no-dangling", "--no-progress", ok=tuple(range(256))
        )
        said = (proc.stdout + proc.stderr).decode(errors="replace").splitlines()
        problems = [line.strip() for line in said if line.strip()]
        if proc.returncode != 0 and not problems:
            problems.append(f"git fsck exited {proc.returncode}")
        return problems if proc.returncode != 0 else []

    def object_format(self) -> str:
        """``sha1`` or ``sha256``: how this repository names objects."""
        return self.out("rev-parse", "--show-object-format") or "sha1"

    def hash_paths(self, paths: list[bytes]) -> list[str]:
        """Store the files at ``paths`` (absolute, as bytes) as blobs; return their ids."""
        if not paths:
            return []
        lines = b"".join(_stdin_path(p) + b"\n" for p in paths)
        out = self.run("hash-object", "-w", "--no-filters", "--stdin-paths", input=lines)
        ids = out.stdout.decode().split()
        if len(ids) != len(paths):
            raise ToolError(f"git hash-object returned {len(ids)} ids for {len(paths)} files")
        return ids

    def hash_contents(self, contents: list[bytes]) -> list[str]:
        """Store each of ``contents`` as a blob (through private temporary files)."""
        with tempfile.TemporaryDirectory(prefix="backupctl-git-") as tmp:
            paths = []
            for number, data in enumerate(contents):
                path = Path(tmp) / str(number)
                path.write_bytes(data)
                paths.append(os.fsencode(path))
            return self.hash_paths(paths)

    def write_tree(self, entries: Iterable[TreeEntry]) -> str:
        """Write the tree holding ``entries`` (through a private index); return its id."""
        info = b"".join(f"{e.mode} {e.sha}\t".encode() + e.path + b"\0" for e in entries)
        with tempfile.TemporaryDirectory(prefix="backupctl-git-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.run("update-index", "-z", "--index-info", input=info, env=env)
            return self.out("write-tree", env=env)

    def commit_tree(
        self, tree: str, parent: str | None, message: str, who: Identity, when: datetime
    ) -> str:
        """Write a commit of ``tree`` on ``parent``; return its id."""
        date = f"@{int(when.timestamp())} +0000"
        env = {
            "GIT_AUTHOR_NAME": who.name,
            "GIT_AUTHOR_EMAIL": who.email,
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": who.name,
            "GIT_COMMITTER_EMAIL": who.email,
            "GIT_COMMITTER_DATE": date,
        }
        parents = ["-p", parent] if parent else []
        return self.out("commit-tree", tree, *parents, input=message.encode(), env=env)

    def update_ref(self, ref: str, new: str, old: str | None, reason: str) -> None:
        """Move ``ref`` to ``new`` only if it is still at ``old`` (None: must not exist)."""
        self.run("update-ref", "-m", reason, ref, new, old or "0" * len(new))

    def bundle(self, ref: str, base: str | None) -> Iterator[bytes]:
        """Yield a Git bundle of ``ref`` (a branch: a bundle names its tips by ref) holding
        the commits and objects not reachable from ``base`` (None: the whole history), in
        chunks as ``git bundle create`` writes it. Raises ToolError when git fails (the
        bytes already yielded are then not a bundle: the caller discards them)."""
        args = ["bundle", "create", "--quiet", "-", *([f"^{base}"] if base else []), ref]
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                self._argv(args), stdout=subprocess.PIPE, stderr=errors, env=self._env(None)
            )
            assert proc.stdout is not None
            try:
                while chunk := proc.stdout.read(1 << 20):
                    yield chunk
            finally:
                proc.stdout.close()
                code = proc.wait()
            if code != 0:
                errors.seek(0)
                said = tail_text(errors.read().decode(errors="replace"), 5) or "no message"
                raise ToolError(f"git bundle failed in {self.git_dir} (exit {code}): {said}")

    def fetch_bundle(self, bundle: Path) -> None:
        """Take in the commits of the bundle file ``bundle``, its refs included (forced):
        ``git bundle verify`` first (the commits it builds on must be here), then ``git
        fetch`` checking every object it brings (``transfer.fsckObjects``). Raises ToolError
        with git's words."""
        self.run("bundle", "verify", "--quiet", str(bundle))
        fsck = {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "transfer.fsckObjects",
            "GIT_CONFIG_VALUE_0": "true",
        }
        self.run(
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            str(bundle), "+refs/heads/*:refs/heads/*", env=fsck,
        )  # fmt: skip

    def ls_tree(self, commit: str) -> list[TreeEntry]:
        """Every blob of ``commit``'s tree (files, links), in Git's order."""
        raw = self.run("ls-tree", "-r", "-z", "--full-tree", commit).stdout
        entries = []
        for record in raw.split(b"\0"):
            if not record:
                continue
            head, path = record.split(b"\t", 1)
            mode, kind, sha = head.decode().split()
            if kind == "blob":
                entries.append(TreeEntry(mode, sha, path))
        return entries

    def read_blobs(self, shas: list[str]) -> Iterator[bytes]:
        """Yield the content of each blob in ``shas``, in order (one ``cat-file`` process).

        Raises ToolError when one is missing or git stops early."""
        if not shas:
            return
        proc = subprocess.Popen(
            self._argv(["cat-file", "--batch"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # missing objects are reported on stdout
            env=self._env(None),
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for sha in shas:
                yield self._read_blob(proc.stdin, proc.stdout, sha)
        except BrokenPipeError:
            raise ToolError(f"git cat-file exited early in {self.git_dir}") from None
        finally:
            proc.stdin.close()
            proc.stdout.close()
            proc.wait()

    def _read_blob(self, stdin: IO[bytes], stdout: IO[bytes], sha: str) -> bytes:
        stdin.write(sha.encode() + b"\n")
        stdin.flush()
        header = stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise ToolError(f"blob {sha} is not in {self.git_dir}")
        size = int(header[2])
        data = stdout.read(size)
        stdout.read(1)  # the newline after each object
        if len(data) != size:
            raise ToolError(f"git cat-file stopped while reading blob {sha}")
        return data


def object_id(data: bytes, object_format: str = "sha1") -> str:
    """The id Git gives a blob holding ``data``."""
    digest = hashlib.new(object_format)
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def file_object_id(path: Path, object_format: str = "sha1") -> str:
    """The id Git gives a blob holding the file at ``path`` (read in chunks)."""
    digest = hashlib.new(object_format)
    with open(path, "rb") as fh:
        digest.update(b"blob %d\0" % os.fstat(fh.fileno()).st_size)
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _stdin_path(path: bytes) -> bytes:
    """A path for ``--stdin-paths``: C-quoted when it has a newline (git unquotes it)."""
    if b"\n" not in path and not path.startswith(b'"'):
        return path
    escaped = path.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"' + escaped + b'"'
