"""Client-side repository encryption end to end: real MariaDB backups (full and binlog)
and model versions into encrypted file:// and s3:// repositories. Nothing stored reveals
the data; verify, restore and catalog sync work with the key and fail clearly without it
or with another one; tampering of any kind is caught. S3 server-side encryption options
reach every object written."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl.demo.server import checksum_tables
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.errors import EncryptionError
from backupctl.policy.loader import load_policies
from backupctl.storage.encryption import (
    CHUNK_SIZE,
    HEADER_SIZE,
    TAG_BYTES,
    generate_key,
    key_id,
)
from backupctl.storage.factory import open_repository
from backupctl.storage.s3 import S3Repository
from backupctl.storage.spec import RepositorySpec
from tests.support.cli import CliResult, run_backupctl
from tests.support.mariadb import MariaDBServer, start_server
from tests.support.model_policies import model_policy
from tests.support.policies import mariadb_policy

# Recognisable, and surrounded by random bytes: zstd cannot compress random data, so it
# stores these bytes as they are, and the marker is visible in an unencrypted backup.
MARKER = b"backupctl-encryption-test-marker-5b1f0e"
ROWS = 40
RECORD = CHUNK_SIZE + TAG_BYTES
Cli = Callable[..., CliResult]


def _write_key(path: Path, text: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((text or generate_key()) + "\n")
    path.chmod(0o600)
    return path


def _kid(path: Path) -> str:
    return key_id(base64.b64decode(path.read_text().strip()))


def _insert_marked_rows(server: MariaDBServer, first_id: int, count: int) -> None:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS vault")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS vault.secrets (id INT PRIMARY KEY, payload LONGBLOB)"
            )
            for n in range(first_id, first_id + count):
                payload = os.urandom(20_000) + MARKER + os.urandom(20_000)
                cur.execute("INSERT INTO vault.secrets VALUES (%s, %s)", (n, payload))
    finally:
        conn.close()


def _live_checksums(server: MariaDBServer) -> dict[str, Any]:
    conn = server.connect()
    try:
        return checksum_tables(conn)
    finally:
        conn.close()


def _ok(result: CliResult) -> CliResult:
    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    return result


def _failed(result: CliResult, code: int, *fragments: str) -> None:
    assert result.code == code, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A small server of our own (backups stay small), holding marked rows."""
    started = start_server(tmp_path_factory.mktemp("encryption-mariadb"))
    try:
        _insert_marked_rows(started, 1, ROWS)
        yield started
    finally:
        started.instance.stop()


# --------------------------------------------------------------------------- MariaDB


@pytest.mark.mariadb
def test_an_unencrypted_backup_shows_the_marker(
    server: MariaDBServer, tmp_path: Path, backupctl: Cli
) -> None:
    """The control: without encryption the marker is there to be found, so the checks
    below that it is absent can fail."""
    policy = mariadb_policy(tmp_path / "policies", server, f"file://{tmp_path / 'repo'}")
    manifest = json.loads(_ok(backupctl("backup", "shop", "--json", policies=policy)).stdout)
    assert manifest["encryption"] is None
    data = next((tmp_path / "repo").rglob("data.mbstream.zst")).read_bytes()
    assert MARKER in data
    stored_manifest = next((tmp_path / "repo").rglob("manifest.json")).read_bytes()
    assert manifest["backup_id"].encode() in stored_manifest


def _repository(where: str, tmp_path: Path, key: Path, request: Any) -> dict[str, Any]:
    encryption = {"key_file": str(key)}
    if where == "file":
        return {"url": f"file://{tmp_path / 'repo'}", "encryption": encryption}
    return {
        "url": f"s3://{request.getfixturevalue('s3_bucket')}/backups",
        "endpoint_url": request.getfixturevalue("s3_endpoint"),
        "part_size_mb": 5,
        "sse": "AES256",
        "encryption": encryption,
    }


def _stored(where: str, tmp_path: Path, request: Any) -> dict[str, bytes]:
    """Every object in the repository, as stored (read behind backupctl's back)."""
    if where == "file":
        root = tmp_path / "repo"
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    found = {}
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        head = client.head_object(Bucket=bucket, Key=obj["Key"])
        assert head.get("ServerSideEncryption") == "AES256", obj["Key"]  # SSE passes through
        found[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return found


@pytest.mark.mariadb
@pytest.mark.parametrize("where", ["file", "s3"])
def test_encrypted_full_and_binlog_backups_hide_the_data_and_restore(
    where: str, server: MariaDBServer, tmp_path: Path, backupctl: Cli, request: Any
) -> None:
    key = _write_key(tmp_path / "secrets" / "repo.key")
    repository = _repository(where, tmp_path, key, request)
    policy = mariadb_policy(tmp_path / "policies", server, repository)

    full = json.loads(_ok(backupctl("backup", "shop", "--json", policies=policy)).stdout)
    assert full["encryption"] == {"cipher": "aes-256-gcm", "key_id": _kid(key)}
    _insert_marked_rows(server, 1000 + (where == "s3") * 1000, 5)  # only in the binlogs
    gtid = server.sql("SELECT @@gtid_binlog_pos")[0][0]
    expected = _live_checksums(server)
    binlog = json.loads(
        _ok(backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy)).stdout
    )

    stored = _stored(where, tmp_path, request)
    names = "\n".join(stored)
    assert "data.mbstream.zst" in names and "manifest.json" in names and "mysql-bin." in names
    for name, blob in stored.items():
        assert MARKER not in blob, f"{name} holds the plaintext marker"
        assert blob.startswith(b"BKCTLENC"), name  # every object, manifests included
    manifests = [blob for name, blob in stored.items() if name.endswith("manifest.json")]
    assert len(manifests) == 2
    for blob in manifests:  # the manifest's JSON is not readable either
        for text in (full["backup_id"], binlog["backup_id"], '"policy"', '"artifacts"'):
            assert text.encode() not in blob

    for backup in (full, binlog):
        verified = backupctl("verify", "shop", backup["backup_id"], "--json", policies=policy)
        checks = json.loads(_ok(verified).stdout)["checks"]
        assert len(checks) == len(backup["artifacts"]) and all(c["passed"] for c in checks)

    target = tmp_path / "restored"
    restored = backupctl(
        "restore",
        "shop",
        "--target-datadir",
        str(target),
        "--to-gtid",
        gtid,
        "--json",
        policies=policy,
    )
    _ok(restored)
    with MariaDBInstance.for_datadir(target, tmp_path / "restored-run") as copy:
        conn = copy.connect()
        try:
            assert checksum_tables(conn) == expected
        finally:
            conn.close()

    # a new host with only the repository, the policy and the key
    fresh = ["--state-dir", str(tmp_path / "new-host"), "--policies", str(policy)]
    _ok(run_backupctl([*fresh, "catalog", "sync"]))
    listed = json.loads(_ok(run_backupctl([*fresh, "list", "--json"])).stdout)
    assert {b["backup_id"] for b in listed} == {full["backup_id"], binlog["backup_id"]}
    assert {b["encryption"]["key_id"] for b in listed} == {_kid(key)}


@dataclass
class Encrypted:
    """One encrypted backup; each test works on its own copy of the repository."""

    server: MariaDBServer
    key: Path
    source: Path
    backup_id: str

    def copy(self, tmp_path: Path, cli: Cli, **encryption: str) -> tuple[Path, Path]:
        """Copy the repository under ``tmp_path`` and sync the catalog from it with the
        right key; return (a policy whose ``encryption`` is ``encryption`` - none when
        empty -, the repository copy)."""
        repo = tmp_path / "repo"
        shutil.copytree(self.source, repo)
        right = {"url": f"file://{repo}", "encryption": {"key_file": str(self.key)}}
        _ok(cli("catalog", "sync", policies=mariadb_policy(tmp_path / "right", self.server, right)))
        repository: dict[str, Any] = {"url": f"file://{repo}"}
        if encryption:
            repository["encryption"] = encryption
        return mariadb_policy(tmp_path / "policies", self.server, repository), repo

    def data(self, repo: Path) -> Path:
        return next(repo.rglob("data.mbstream.zst"))


@pytest.fixture(scope="module")
def encrypted(server: MariaDBServer, tmp_path_factory: pytest.TempPathFactory) -> Encrypted:
    base = tmp_path_factory.mktemp("encrypted-backup")
    key = _write_key(base / "repo.key")
    repository = {"url": f"file://{base / 'repo'}", "encryption": {"key_file": str(key)}}
    policy = mariadb_policy(base / "policies", server, repository)
    state = ["--state-dir", str(base / "state"), "--log-format", "json"]
    result = _ok(run_backupctl([*state, "--policies", str(policy), "backup", "shop", "--json"]))
    encrypted = Encrypted(server, key, base / "repo", json.loads(result.stdout)["backup_id"])
    assert encrypted.data(encrypted.source).stat().st_size > 2 * RECORD  # several chunks
    return encrypted


@pytest.mark.mariadb
def test_a_wrong_key_is_refused_naming_both_key_ids(
    encrypted: Encrypted, tmp_path: Path, backupctl: Cli
) -> None:
    other = _write_key(tmp_path / "other.key")
    policy, _repo = encrypted.copy(tmp_path, backupctl, key_file=str(other))
    message = f"was encrypted with key {_kid(encrypted.key)}, the policy's key is {_kid(other)}"
    _failed(backupctl("verify", "shop", policies=policy), 1, message)
    _failed(backupctl("catalog", "sync", policies=policy), 1, message, "manifest.json")
    target = tmp_path / "target"
    _failed(
        backupctl("restore", "shop", "--target-datadir", str(target), "--yes", policies=policy),
        1,
        message,
    )
    assert not target.exists() or not any(target.iterdir())


@pytest.mark.mariadb
def test_a_missing_key_is_a_policy_error_and_no_key_is_a_clear_one(
    encrypted: Encrypted, tmp_path: Path, backupctl: Cli
) -> None:
    policy, repo = encrypted.copy(tmp_path, backupctl, key_file=str(tmp_path / "gone.key"))
    _failed(
        backupctl("policy", "validate", str(policy)),
        2,
        "repository.encryption.key_file: encryption key file",
        "gone.key does not exist",
    )
    _failed(backupctl("verify", "shop", policies=policy), 2, "gone.key does not exist")
    env_policy = mariadb_policy(
        tmp_path / "env-policies",
        encrypted.server,
        {"url": f"file://{repo}", "encryption": {"key_env": "BACKUPCTL_TEST_NO_SUCH_KEY"}},
    )
    _failed(
        backupctl("verify", "shop", policies=env_policy),
        2,
        "environment variable BACKUPCTL_TEST_NO_SUCH_KEY is not set",
    )
    # the policy forgot `encryption:` altogether
    plain = mariadb_policy(tmp_path / "plain-policies", encrypted.server, f"file://{repo}")
    _failed(
        backupctl("catalog", "sync", policies=plain),
        1,
        f"is encrypted (key {_kid(encrypted.key)}) but the policy's repository has no",
    )


def test_a_key_file_removed_after_loading_is_a_clear_runtime_error(tmp_path: Path) -> None:
    key = _write_key(tmp_path / "repo.key")
    policy = tmp_path / "policies" / "llm.yaml"
    model_policy(tmp_path / "policies", "llm", tmp_path / "model", tmp_path / "repo", {})
    data = yaml.safe_load(policy.read_text())
    data["repository"] = {"url": data["repository"], "encryption": {"key_file": str(key)}}
    policy.write_text(yaml.safe_dump(data))
    (loaded,) = load_policies(policy)
    key.unlink()
    with pytest.raises(EncryptionError, match=r"cannot load the encryption key: .*does not exist"):
        open_repository(loaded.repository)


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x20]))


def _cut_last_chunk(path: Path) -> None:
    size = path.stat().st_size
    last = (size - HEADER_SIZE) % RECORD or RECORD
    with open(path, "r+b") as fh:
        fh.truncate(size - last)


def _swap_two_chunks(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    first = slice(HEADER_SIZE, HEADER_SIZE + RECORD)
    second = slice(HEADER_SIZE + RECORD, HEADER_SIZE + 2 * RECORD)
    blob[first], blob[second] = blob[second], blob[first]
    path.write_bytes(bytes(blob))


def _replace_with_log(path: Path) -> None:
    shutil.copyfile(next(path.parent.glob("mariabackup.log.zst")), path)


BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped byte": (lambda p: _flip(p, p.stat().st_size // 2), "corrupted or was tampered with"),
    "last chunk dropped": (_cut_last_chunk, "is truncated"),
    "chunks reordered": (_swap_two_chunks, "corrupted or was tampered with"),
    "swapped for another object": (_replace_with_log, "corrupted or was tampered with"),
}


@pytest.mark.mariadb
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_verify_catches_tampering_with_exit_3_naming_the_object(
    breakage: str, encrypted: Encrypted, tmp_path: Path, backupctl: Cli
) -> None:
    policy, repo = encrypted.copy(tmp_path, backupctl, key_file=str(encrypted.key))
    _ok(backupctl("verify", "shop", policies=policy))
    damage, message = BREAKAGES[breakage]
    damage(encrypted.data(repo))
    result = backupctl("verify", "shop", "--json", policies=policy)
    _failed(result, 3, "data.mbstream.zst", message)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert not checks["checksum data.mbstream.zst"]["passed"]
    assert checks["checksum mariabackup.log.zst"]["passed"]


@pytest.mark.mariadb
def test_a_tampered_manifest_or_a_manifest_from_another_backup_is_caught(
    encrypted: Encrypted, tmp_path: Path, backupctl: Cli
) -> None:
    policy, repo = encrypted.copy(tmp_path, backupctl, key_file=str(encrypted.key))
    manifest = next(repo.rglob("manifest.json"))
    good = manifest.read_bytes()
    _flip(manifest, len(good) - 5)
    _failed(backupctl("verify", "shop", policies=policy), 3, "manifest.json", "tampered")
    # a valid encrypted object moved to the manifest's place: bound to its own key
    shutil.copyfile(manifest.parent / "started.json", manifest)
    _failed(backupctl("verify", "shop", policies=policy), 3, "manifest.json", "tampered")
    manifest.write_bytes(good)
    _ok(backupctl("verify", "shop", policies=policy))


# --------------------------------------------------------------------------- models


def test_model_versions_are_stored_encrypted_and_restore(tmp_path: Path, backupctl: Cli) -> None:
    key = _write_key(tmp_path / "model.key")
    served = tmp_path / "models" / "llm"
    served.mkdir(parents=True)
    policy = model_policy(
        tmp_path / "policies", "llm", served, tmp_path / "repo", {"check": "*/15 * * * *"}
    )
    data = yaml.safe_load(policy.read_text())
    data["repository"] = {"url": data["repository"], "encryption": {"key_file": str(key)}}
    policy.write_text(yaml.safe_dump(data))
    versions = {}
    for version in ("v1", "v2"):
        weights = os.urandom(300_000) + MARKER + version.encode() + os.urandom(300_000)
        (served / "weights.bin").write_bytes(weights)
        (served / "VERSION").write_text(version + "\n")
        versions[version] = weights
        _ok(backupctl("backup", "llm", policies=policy))
    for path in (tmp_path / "repo").rglob("*"):
        if path.is_file():
            assert MARKER not in path.read_bytes(), path
    _ok(backupctl("verify", "llm", policies=policy))
    _ok(backupctl("restore", "llm", "--previous", "--yes", policies=policy))
    assert (served / "VERSION").read_text() == "v1\n"
    assert (served / "weights.bin").read_bytes() == versions["v1"]

    # drill reports go to the repository encrypted, and come back from it
    drill = json.loads(_ok(backupctl("drill", "run", "llm", "--json", policies=policy)).stdout)
    stored = next((tmp_path / "repo" / "llm" / "drills").rglob("report.json")).read_bytes()
    assert stored.startswith(b"BKCTLENC") and drill["drill_id"].encode() not in stored
    fresh = ["--state-dir", str(tmp_path / "new-host"), "--policies", str(policy)]
    listed = json.loads(_ok(run_backupctl([*fresh, "drill", "list", "llm", "--json"])).stdout)
    assert [d["drill_id"] for d in listed] == [drill["drill_id"]]


# --------------------------------------------------------------------------- keys, S3 SSE


def test_key_generate_writes_a_private_file_and_never_overwrites(
    tmp_path: Path, backupctl: Cli
) -> None:
    path = tmp_path / "keys" / "repo.key"
    path.parent.mkdir()
    result = _ok(backupctl("key", "generate", "--output", str(path), "--json"))
    written = json.loads(result.stdout)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert written == {"key_id": _kid(path), "path": str(path)}
    assert path.read_text().strip() not in result.output  # the key is only in the file
    assert _ok(backupctl("key", "id", "--key-file", str(path))).stdout.strip() == _kid(path)
    before = path.read_bytes()
    _failed(backupctl("key", "generate", "--output", str(path)), 2, "refusing to overwrite")
    assert path.read_bytes() == before
    printed = _ok(backupctl("key", "generate"))
    assert len(printed.stdout.strip()) == 44 and "key id: " in printed.stderr
    _failed(backupctl("key", "id", "--key-file", str(tmp_path / "nope")), 2, "cannot read")


def test_s3_server_side_encryption_reaches_every_object(
    s3_endpoint: str, s3_client: Any, s3_bucket: str
) -> None:
    kms_key = "arn:aws:kms:us-east-1:123456789012:key/backupctl-test"
    spec = RepositorySpec(
        url=f"s3://{s3_bucket}/sse",
        endpoint_url=s3_endpoint,
        part_size_mb=5,
        sse="aws:kms",
        sse_kms_key_id=kms_key,
    )
    repo = open_repository(spec)
    assert isinstance(repo, S3Repository)
    repo.put_bytes("p/small", b"x")
    with repo.open_write("p/large") as writer:  # multipart: CreateMultipartUpload
        writer.write(os.urandom(6 << 20))
        writer.commit()
    with repo.lock("p", "test"):
        keys = ["sse/p/small", "sse/p/large", "sse/p/lock.json"]
        for key in keys:
            head = s3_client.head_object(Bucket=s3_bucket, Key=key)
            assert head.get("ServerSideEncryption") == "aws:kms", key
            assert head.get("SSEKMSKeyId") == kms_key, key
    plain = open_repository(RepositorySpec(url=f"s3://{s3_bucket}/plain", endpoint_url=s3_endpoint))
    plain.put_bytes("k", b"x")
    assert "ServerSideEncryption" not in s3_client.head_object(Bucket=s3_bucket, Key="plain/k")


@pytest.mark.parametrize(
    ("repository", "message"),
    [
        ({"url": "file:///var/backups/x", "sse": "AES256"}, "sse and sse_kms_key_id are S3"),
        ({"url": "s3://bucket-x/p", "sse_kms_key_id": "k"}, "sse_kms_key_id needs sse: aws:kms"),
        ({"url": "s3://bucket-x/p", "sse": "aws:kms-dsse"}, "repository.sse"),
        ({"url": "file:///var/backups/x", "encryption": {}}, "exactly one of key_file, key_env"),
    ],
)
def test_repository_encryption_options_are_checked_at_load(
    repository: dict[str, Any], message: str, tmp_path: Path, backupctl: Cli
) -> None:
    policy = model_policy(tmp_path / "policies", "llm", tmp_path / "m", tmp_path / "repo", {})
    data = yaml.safe_load(policy.read_text())
    data["repository"] = repository
    policy.write_text(yaml.safe_dump(data))
    _failed(backupctl("policy", "validate", str(policy)), 2, message)


def test_config_git_refuses_encryption(tmp_path: Path, backupctl: Cli) -> None:
    key = _write_key(tmp_path / "k.key")
    policy = tmp_path / "policies" / "configs.yaml"
    policy.parent.mkdir()
    policy.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "configs",
                "driver": "config-git",
                "paths": [str(tmp_path)],
                "repository": {
                    "url": f"file://{tmp_path / 'history.git'}",
                    "encryption": {"key_file": str(key)},
                },
            }
        )
    )
    _failed(backupctl("policy", "validate", str(policy)), 2, "config-git cannot encrypt")


def test_policies_sharing_a_repository_must_share_its_key(tmp_path: Path, backupctl: Cli) -> None:
    policies = tmp_path / "policies"
    keys = {name: _write_key(tmp_path / f"{name}.key") for name in ("a", "b")}
    repo = tmp_path / "repo"
    for name, encryption in (
        ("a-one", {"key_file": str(keys["a"])}),
        ("b-two", {"key_file": str(keys["a"])}),
        ("c-three", {"key_file": str(keys["b"])}),
        ("d-four", None),
    ):
        path = model_policy(policies, name, tmp_path / name, repo, {})
        data = yaml.safe_load(path.read_text())
        data["repository"] = {"url": data["repository"]}
        if encryption:
            data["repository"]["encryption"] = encryption
        path.write_text(yaml.safe_dump(data))
    result = backupctl("policy", "validate", str(policies))
    _failed(result, 2, "2 problem(s)", f"key {_kid(keys['b'])}", "no encryption")
    assert "b-two.yaml" not in result.stderr  # the same key as policy one: fine
    (policies / "c-three.yaml").unlink()
    (policies / "d-four.yaml").unlink()
    _ok(backupctl("policy", "validate", str(policies)))
