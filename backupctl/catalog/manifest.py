"""The JSON manifest written beside every backup, last: its presence means complete."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from backupctl.errors import RepositoryError, VerificationFailed
from backupctl.storage import keys
from backupctl.storage.base import Repository
from backupctl.storage.encryption import refuse_encrypted

MANIFEST = "manifest.json"
DetailsT = TypeVar("DetailsT", bound=BaseModel)
STARTED = "started.json"


class Artifact(BaseModel):
    """One stored object of a backup."""

    model_config = ConfigDict(extra="allow")

    name: str
    key: str
    raw_bytes: int
    stored_bytes: int
    sha256: str = Field(description="sha256 of the stored (compressed) bytes")
    compression: Literal["zstd", "none"] = "zstd"


class BackupDetails(BaseModel):
    """Base of the typed documents drivers keep in ``Manifest.details``: what one kind of
    backup records (a binlog's coordinates, a snapshot's indices, a model's files).

    Drivers return one from ``backup`` and read manifests through ``of``. Fields a later
    version adds are kept (``extra="allow"``) and fields an older one lacked get their
    defaults, so old repositories stay readable; a document that does not fit (a value of
    the wrong type, a required field missing) is refused, never guessed at.
    """

    model_config = ConfigDict(extra="allow")

    @classmethod
    def of(cls, manifest: Manifest) -> Self:
        """``manifest``'s details read as this document. Raises VerificationFailed (exit 3)
        naming the backup when they do not fit (tampered or corrupt)."""
        return manifest.details_as(cls)


class Manifest(BaseModel):
    """Everything needed to list, verify and restore one backup from the repository alone."""

    model_config = ConfigDict(extra="allow")

    format: Literal[1] = 1
    backup_id: str
    policy: str
    driver: str
    kind: str
    started_at: datetime
    finished_at: datetime
    artifacts: list[Artifact]
    tool_versions: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    failure: str | None = Field(
        None, description="why this backup is not restorable (recorded failed backups only)"
    )
    encryption: dict[str, str] | None = Field(
        None,
        description='client-side encryption of the stored objects, {"cipher": "aes-256-gcm", '
        '"key_id": …} (never the key); None: stored unencrypted',
    )

    #: details already read, by model, with the details they were read from: a copy with
    #: other details (``model_copy(update=…)`` shares this cache) is read afresh
    _typed: dict[type[BaseModel], tuple[object, BaseModel]] = PrivateAttr(default_factory=dict)

    @property
    def restorable(self) -> bool:
        return self.failure is None

    def details_as(self, model: type[DetailsT]) -> DetailsT:
        """The details read as ``model`` (parsed once). Raises VerificationFailed naming the
        backup when they do not fit."""
        cached = self._typed.get(model)
        found = cached[1] if cached is not None and cached[0] is self.details else None
        if found is None:
            try:
                found = model.model_validate(self.details)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'details'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                raise VerificationFailed(
                    f"refusing backup {self.backup_id} of {self.policy}: its manifest's details "
                    f"do not describe a {self.kind} backup ({problems}; tampered or corrupt)"
                ) from None
            self._typed[model] = (self.details, found)
        assert isinstance(found, model)
        return found

    @property
    def raw_bytes(self) -> int:
        return sum(a.raw_bytes for a in self.artifacts)

    @property
    def stored_bytes(self) -> int:
        return sum(a.stored_bytes for a in self.artifacts)

    @property
    def label(self) -> str:
        """How messages and plans name the backup: ``<kind> <backup id>``."""
        return f"{self.kind} {self.backup_id}"

    @property
    def prefix(self) -> str:
        return backup_prefix(self.policy, self.kind, self.backup_id)

    def artifact(self, name: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        raise RepositoryError(f"backup {self.backup_id} has no artifact {name!r}")

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data["raw_bytes"], data["stored_bytes"] = self.raw_bytes, self.stored_bytes
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def backup_prefix(policy: str, kind: str, backup_id: str) -> str:
    """Return the validated key prefix of one backup: ``<policy>/<kind>/<backup_id>``."""
    if not keys.NAME_RE.match(policy) or not keys.NAME_RE.match(kind):
        raise RepositoryError(f"invalid policy or kind name: {policy!r}/{kind!r}")
    if not keys.BACKUP_ID_RE.match(backup_id):
        raise RepositoryError(f"invalid backup id {backup_id!r}")
    return keys.join(policy, kind, backup_id)


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """Parse manifest bytes. Raises RepositoryError naming ``where`` when they are invalid
    (EncryptionError when they are encrypted: the policy lacks the key), VerificationFailed
    when they name what no backup of ours can (see ``check_manifest``)."""
    refuse_encrypted(raw, where)
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        data.pop("raw_bytes", None)
        data.pop("stored_bytes", None)
        manifest = Manifest.model_validate(data)
    except (ValueError, ValidationError, RecursionError) as exc:
        raise RepositoryError(f"invalid manifest {where}: {exc}") from exc
    check_manifest(manifest, where)
    return manifest


#: policy-wide key areas whose objects several backups reference (model file blobs)
SHARED_DIRS = ("blobs",)
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def check_manifest(manifest: Manifest, where: str, location: str | None = None) -> None:
    """Refuse a manifest that could make a restore or a prune reach beyond its own
    backup: names that are not names, artifact keys outside ``<policy>/<kind>/<id>/``
    (or the policy's shared areas), artifact names with control characters; with
    ``location`` (the key prefix it was read from), one that describes another backup.

    A repository writable by someone else is the threat: whatever they put in a manifest
    is data, never a path to follow. Raises VerificationFailed (exit 3) saying what."""

    def unsafe(what: str) -> VerificationFailed:
        return VerificationFailed(
            f"refusing manifest {where}: {what} (tampered with or corrupt; not restored)"
        )

    policy, kind, backup_id = manifest.policy, manifest.kind, manifest.backup_id
    if not keys.NAME_RE.match(policy) or not keys.NAME_RE.match(kind):
        raise unsafe(f"invalid policy or kind {policy!r}/{kind!r}")
    if not keys.BACKUP_ID_RE.match(backup_id):
        raise unsafe(f"invalid backup id {backup_id!r}")
    own = keys.join(policy, kind, backup_id)
    if location is not None and location != own:
        raise unsafe(f"it describes backup {own}, not the one it is stored as ({location})")
    shared = tuple(keys.join(policy, d) + "/" for d in SHARED_DIRS)
    for artifact in manifest.artifacts:
        if not artifact.name or len(artifact.name) > 1024 or _UNSAFE_CHARS.search(artifact.name):
            raise unsafe(f"invalid artifact name {artifact.name!r}")
        try:
            keys.validate_key(artifact.key)
        except RepositoryError:
            raise unsafe(f"unsafe object key {artifact.key!r}") from None
        if not artifact.key.startswith((own + "/", *shared)):
            raise unsafe(f"object key {artifact.key!r} lies outside backup {own}")


def read_manifest(repo: Repository, policy: str, kind: str, backup_id: str) -> Manifest:
    """Read one manifest. Raises ObjectNotFound / RepositoryError / VerificationFailed."""
    prefix = backup_prefix(policy, kind, backup_id)
    key = keys.join(prefix, MANIFEST)
    manifest = parse_manifest(repo.get_bytes(key), f"{repo.url}/{key}")
    check_manifest(manifest, f"{repo.url}/{key}", location=prefix)
    return manifest


def scan_manifests(repo: Repository, policy: str | None = None) -> list[Manifest]:
    """Return every complete backup's manifest in ``repo`` (optionally one policy's)."""
    prefix = f"{policy}/" if policy else ""
    manifests = []
    for info in repo.list(prefix):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[3] == MANIFEST and keys.BACKUP_ID_RE.match(parts[2]):
            where = f"{repo.url}/{info.key}"
            manifest = parse_manifest(repo.get_bytes(info.key), where)
            check_manifest(manifest, where, location="/".join(parts[:3]))
            manifests.append(manifest)
    return manifests


@dataclass(frozen=True)
class BackupListing:
    """What one listing of a policy's keys says, without reading a manifest."""

    #: complete backups: backup id -> prefix
    complete: dict[str, str]
    #: prefixes of backups started and never given a manifest
    incomplete: list[str]


def backup_listing(
    repo: Repository, policy: str, kinds: Sequence[str] | None = None
) -> BackupListing:
    """List ``policy``'s backups (of ``kinds``, default all) in ``repo``: one LIST."""
    started, complete = set(), {}
    for info in repo.list(f"{policy}/"):
        parts = info.key.split("/")
        if len(parts) != 4 or (kinds is not None and parts[1] not in kinds):
            continue
        if parts[3] == STARTED:
            started.add("/".join(parts[:3]))
        elif parts[3] == MANIFEST and keys.BACKUP_ID_RE.match(parts[2]):
            complete[parts[2]] = "/".join(parts[:3])
    return BackupListing(complete, sorted(started - set(complete.values())))


def listed_manifests(
    repo: Repository, policy: str, listing: BackupListing, known: Mapping[str, Manifest]
) -> list[Manifest]:
    """The manifests of ``listing``'s complete backups, oldest first: from ``known`` (the
    catalog's) when there, read from ``repo`` only for the others."""
    manifests = []
    for backup_id, prefix in listing.complete.items():
        manifest = known.get(backup_id)
        if manifest is None:
            manifest = read_manifest(repo, policy, prefix.split("/")[1], backup_id)
        manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.finished_at, m.backup_id))


def incomplete_backups(
    repo: Repository, policy: str, kinds: Sequence[str] | None = None
) -> list[str]:
    """Return prefixes of backups (of ``kinds``, default all) that were started but never
    got a manifest."""
    return backup_listing(repo, policy, kinds).incomplete
