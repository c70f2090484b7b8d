"""The first half of ``dr bootstrap``: bring back, from one repository, the policies and
hooks that ``operations.setup`` keeps there with every backup, and the key that reads it.

What comes back is written under a root directory (``policies/`` and ``hooks/`` beside
it, as on the lost host); a file already there with other content is never overwritten.
Inline secrets were kept as ``REDACTED``: they are reported, for the operator to set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml

from backupctl.errors import BackupctlError, UsageError, VerificationFailed
from backupctl.operations.setup import SETUP_DIR, SETUP_INDEX
from backupctl.statefile import write_atomic
from backupctl.storage import keys
from backupctl.storage.base import Repository

log = structlog.get_logger()


@dataclass
class KeptSetup:
    """One policy's setup as a repository keeps it (``<policy>/setup/setup.json``)."""

    policy: str
    index: dict[str, Any]

    @property
    def prefix(self) -> str:
        return keys.join(self.policy, SETUP_DIR)


@dataclass
class RecoveredPolicy:
    """What came back for one policy: its file, its hooks, what the operator must set."""

    policy: str
    policy_file: Path
    hooks: list[Path] = field(default_factory=list)
    stacks: list[Path] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    #: files that were already there with the same content
    unchanged: list[Path] = field(default_factory=list)
    written: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "policy_file": str(self.policy_file),
            "hooks": [str(h) for h in self.hooks],
            "stacks": [str(s) for s in self.stacks],
            "redacted": self.redacted,
            "written": self.written,
        }


def kept_setups(repo: Repository) -> list[KeptSetup]:
    """Every policy setup ``repo`` keeps, by policy name. Raises RepositoryError."""
    found = []
    for info in repo.list(""):
        parts = info.key.split("/")
        if len(parts) != 3 or parts[1:] != [SETUP_DIR, SETUP_INDEX]:
            continue
        where = f"{repo.url}/{info.key}"
        try:
            index = json.loads(repo.get_bytes(info.key))
        except ValueError as exc:
            raise VerificationFailed(f"{where} is not JSON: {exc}") from None
        if not isinstance(index, dict) or index.get("policy") != parts[0]:
            raise VerificationFailed(f"{where} does not describe policy {parts[0]!r}")
        found.append(KeptSetup(parts[0], index))
    if not found:
        raise UsageError(
            f"{repo.url} holds no kept setup (<policy>/setup/setup.json): it is not a "
            "backupctl repository, the URL's prefix is wrong, or no backup ran since "
            "backupctl started keeping it"
        )
    return sorted(found, key=lambda s: s.policy)


def _checked(repo: Repository, key: str, sha256: str | None) -> bytes:
    data = repo.get_bytes(key)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise VerificationFailed(f"{repo.url}/{key} does not match its setup.json (sha256)")
    return data


def _place(path: Path, data: bytes, mode: int, write: bool, recovered: RecoveredPolicy) -> bool:
    """Write ``data`` at ``path`` unless the same is there; raise UsageError for other
    content there. Returns whether it (would have) written."""
    if path.is_file() and path.read_bytes() == data:
        recovered.unchanged.append(path)
        return False
    if path.exists():
        raise UsageError(
            f"{path} exists with other content: move it away (or give --target-root a new "
            "directory); dr bootstrap never overwrites"
        )
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, mode)
    return True


def recover_setup(
    repo: Repository, setups: list[KeptSetup], root: Path, *, write: bool
) -> list[RecoveredPolicy]:
    """Write each kept policy file to ``root/policies/`` and its hooks to ``root/hooks/``
    (``write=False``: only check what would be written). Raises UsageError for a file
    there with other content, VerificationFailed for a kept file that does not match its
    index, RepositoryError."""
    recovered = []
    for setup in setups:
        index = setup.index
        name = str(index.get("policy_file") or f"{setup.policy}.yaml")
        if "/" in name or name.startswith("."):
            raise VerificationFailed(f"{repo.url}/{setup.prefix}: unsafe policy file name {name!r}")
        text = _checked(repo, keys.join(setup.prefix, "policy", name), index.get("policy_sha256"))
        item = RecoveredPolicy(setup.policy, root / "policies" / name)
        item.redacted = [str(k) for k in index.get("redacted", [])]
        item.written = _place(item.policy_file, text, 0o640, write, item)
        for hook in index.get("hooks", []):
            relative = str(hook["path"])
            keys.validate_key(relative)  # no absolute path, no '..'
            data = _checked(repo, keys.join(setup.prefix, "hooks", relative), hook.get("sha256"))
            target = root / "hooks" / relative
            mode = int(str(hook.get("mode", "0o750")), 8) & 0o777
            if _place(target, data, mode, write, item):
                item.hooks.append(target)
        for stack in index.get("stacks", []):
            stack_name = str(stack["path"])
            if "/" in stack_name or stack_name.startswith("."):
                raise VerificationFailed(f"{repo.url}/{setup.prefix}: unsafe stack {stack_name!r}")
            data = _checked(repo, keys.join(setup.prefix, "stacks", stack_name), stack["sha256"])
            target = root / "stacks" / stack_name
            if _place(target, data, 0o640, write, item):
                item.stacks.append(target)
        recovered.append(item)
        log.info("setup recovered", policy=setup.policy, hooks=len(item.hooks), write=write)
    return recovered


def key_files_for(policy_texts: dict[str, str], url: str) -> list[Path]:
    """The key files the recovered policies read ``url``'s key from (``encryption:
    key_file:`` of a repository with that URL)."""
    found: set[Path] = set()
    for text in policy_texts.values():
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict):
            continue
        specs = data.get("repositories") or [data.get("repository")]
        for spec in specs:
            if not isinstance(spec, dict) or spec.get("url") != url:
                continue
            encryption = spec.get("encryption") or {}
            if isinstance(encryption, dict) and encryption.get("key_file"):
                found.add(Path(str(encryption["key_file"])))
    return sorted(found)


def install_key(key_file: Path, wanted: list[Path], *, write: bool) -> list[Path]:
    """Put the operator's key where the policies expect it (mode 0600), where no key is;
    return the paths written. Raises UsageError when another key is there."""
    data = key_file.read_bytes()
    written = []
    for path in wanted:
        if path.exists():
            if path.resolve() != key_file.resolve() and path.read_bytes() != data:
                raise UsageError(f"{path} holds another key than {key_file}: move it away")
            continue
        if write:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(path, data, 0o600)
        written.append(path)
    return written


def read_policy_texts(recovered: list[RecoveredPolicy], repo: Repository) -> dict[str, str]:
    """The recovered policy files' texts by policy (from disk when written, else from
    ``repo``: a dry run writes nothing)."""
    texts = {}
    for item in recovered:
        if item.policy_file.is_file():
            texts[item.policy] = item.policy_file.read_text()
            continue
        name = item.policy_file.name
        try:
            texts[item.policy] = repo.get_bytes(
                keys.join(item.policy, SETUP_DIR, "policy", name)
            ).decode()
        except BackupctlError:
            continue
    return texts


def ensure_datadir(path: Path, *, write: bool) -> bool:
    """A new host's empty datadir where the policy expects one (the MariaDB package makes
    it; a restore moves it aside). Returns whether it was missing."""
    if path.exists():
        return False
    if write:
        path.mkdir(parents=True, mode=0o750)
        parent = path.parent.stat()
        os.chown(path, parent.st_uid, parent.st_gid)
    return True


def place_config_files(staging: Path, *, write: bool) -> tuple[list[str], list[str]]:
    """Put each file restored under ``staging`` (its absolute path below it) where it
    belongs, when nothing is there; return (placed, left: there with other content)."""
    placed, left = [], []
    for source in sorted(p for p in staging.rglob("*") if p.is_file() and not p.is_symlink()):
        destination = Path("/") / source.relative_to(staging)
        if destination.exists():
            if destination.is_file() and destination.read_bytes() == source.read_bytes():
                continue
            left.append(str(destination))
            continue
        if write:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
        placed.append(str(destination))
    return placed, left
