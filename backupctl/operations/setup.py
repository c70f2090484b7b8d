"""What a new host needs besides the backups: each policy's file, the hooks beside it, the
stack files naming it and the identifiers (never the values) of its encryption keys,
kept in every repository of the policy under ``<policy>/setup/`` with every successful
backup and copy.

``setup.json`` lists what is there (each hook's path relative to ``hooks/``, its mode
and sha256) and is written last; it is rewritten only when something changed. Inline
secrets of the policy file (``password: …``, ``api_key: …`` written out rather than
``${VAR}``) are replaced by ``REDACTED`` and named in ``setup.json``, so that the repository
never holds a secret: a rebuilt host sets them again.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path
from typing import Any

import structlog
import yaml

from backupctl import __version__
from backupctl.errors import BackupctlError
from backupctl.operations.context import Context
from backupctl.policy.common import PolicyBase
from backupctl.storage import keys
from backupctl.storage.base import Repository

log = structlog.get_logger()

SETUP_DIR = "setup"
SETUP_INDEX = "setup.json"
#: hooks bigger than this are not kept (a hook is a script, not a payload)
HOOK_LIMIT = 1 << 20
#: policy keys whose inline values are secrets
_SECRET_KEYS = ("password", "api_key", "token")
_INLINE_SECRET = re.compile(
    r"^(?P<lead>\s*(?:-\s+)?(?P<key>" + "|".join(_SECRET_KEYS) + r")\s*:\s*)(?P<value>.+?)\s*$"
)


def setup_prefix(policy: str) -> str:
    return keys.join(policy, SETUP_DIR)


def redacted_policy_text(text: str) -> tuple[str, list[str]]:
    """``text`` with every inline secret value replaced by ``REDACTED`` (a ``${VAR}``
    reference is kept: it names, not holds, the secret); the keys redacted."""
    lines, redacted = [], []
    for line in text.splitlines(keepends=True):
        match = _INLINE_SECRET.match(line.rstrip("\n"))
        value = match.group("value") if match else ""
        if match and not re.fullmatch(
            r"""["']?\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}["']?""", value
        ):
            line = f"{match.group('lead')}REDACTED\n"
            redacted.append(match.group("key"))
        lines.append(line)
    return "".join(lines), redacted


def hooks_dir(policy: PolicyBase) -> Path | None:
    """The ``hooks/`` directory beside the policy's ``policies/`` directory, if any."""
    if policy.source is None:
        return None
    found = policy.resolve_hook("hooks")  # relative hooks resolve beside policies/
    return found if found.is_dir() else None


def _hook_files(directory: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= HOOK_LIMIT:
            relative = path.relative_to(directory).as_posix()
            try:
                keys.validate_key(relative)
            except BackupctlError:
                log.warning("hook not kept: its name is not a safe object key", hook=relative)
                continue
            files.append((relative, path))
    return files


def _stack_files(policy: PolicyBase) -> list[Path]:
    """The stack files (``stacks/`` beside ``policies/``) that name ``policy``."""
    if policy.source is None:
        return []
    directory = policy.resolve_hook("stacks")
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and policy.name in (data.get("policies") or []):
            found.append(path)
    return found


def _key_ids(policy: PolicyBase) -> dict[str, str]:
    ids = {}
    for name in policy.repository_names:
        spec = policy.repository_named(name)
        if spec.encryption is not None:
            ids[name] = spec.encryption.key_id()
    return ids


def keep_setup(repo: Repository, policy: PolicyBase) -> bool:
    """Write ``policy``'s setup into ``repo`` when it differs from what is there; return
    whether it wrote. Raises RepositoryError (and what reading the key raises)."""
    if policy.source is None:
        return False
    text, redacted = redacted_policy_text(policy.source.read_text())
    hooks = hooks_dir(policy)
    files = _hook_files(hooks) if hooks is not None else []
    contents = {relative: path.read_bytes() for relative, path in files}
    stacks = {path.name: path.read_bytes() for path in _stack_files(policy)}
    index: dict[str, Any] = {
        "policy": policy.name,
        "policy_file": policy.source.name,
        "policy_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "redacted": redacted,
        "hooks": [
            {
                "path": relative,
                "mode": oct(path.stat().st_mode & 0o777),
                "sha256": hashlib.sha256(contents[relative]).hexdigest(),
            }
            for relative, path in files
        ],
        "key_ids": _key_ids(policy),
        "stacks": [
            {"path": name, "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(stacks.items())
        ],
    }
    prefix = setup_prefix(policy.name)
    index_key = keys.join(prefix, SETUP_INDEX)
    try:
        earlier = json.loads(repo.get_bytes(index_key))
    except (BackupctlError, ValueError):
        earlier = None
    if isinstance(earlier, dict) and {k: earlier.get(k) for k in index} == index:
        return False
    repo.put_bytes(keys.join(prefix, "policy", policy.source.name), text.encode())
    for relative, data in contents.items():
        repo.put_bytes(keys.join(prefix, "hooks", relative), data)
    for name, data in stacks.items():
        repo.put_bytes(keys.join(prefix, "stacks", name), data)
    index |= {"backupctl": __version__, "host": socket.gethostname()}
    repo.put_bytes(index_key, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
    log.info("setup kept", repository=repo.url, hooks=len(files), redacted=redacted)
    return True


def keep_setup_everywhere(ctx: Context, policy: PolicyBase) -> None:
    """Keep ``policy``'s setup in each of its repositories; a failure is logged, never
    raised (the backup it follows is stored)."""
    for name in policy.repository_names:
        try:
            keep_setup(ctx.repository_named(policy, name), policy)
        except (BackupctlError, OSError) as exc:
            log.warning("could not keep the setup", repository=name, error=str(exc))
