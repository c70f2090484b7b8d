"""A repository someone else can write: whatever a tampered manifest, stream, Git tree or
drill report says, a restore never writes outside its target, and says so.

Each test takes a real backup, edits the repository the way an attacker with write
access would (the manifest JSON and its checksums, the mbstream inside the compressed
object, a Git tree crafted with ``hash-object --literally``), then runs the restore as
an operator does. The refusal is exit 3 (VerificationFailed: what the repository holds
does not verify, so nothing of it is trusted) with a message naming what was refused,
and a sentinel directory where the hostile paths point stays untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard

from backupctl.drivers.mariadb.extract import _StreamNames, _UnsafeName
from backupctl.drivers.mariadb.pitr import ChainLink, ReplayBinlogs
from backupctl.errors import VerificationFailed
from backupctl.runbook.step import RunContext
from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import model_policy
from tests.support.policies import mariadb_policy

REFUSED = 3  # VerificationFailed: the repository's content does not verify


def _sentinel(directory: Path) -> Callable[[], None]:
    """A directory hostile paths aim at; the returned check says it is as it was."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keep").write_text("untouched\n")

    def untouched() -> None:
        found = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))
        assert found == ["keep"], f"something was written outside the target: {found}"
        assert (directory / "keep").read_text() == "untouched\n"

    return untouched


def _manifest_path(repo: Path, policy: str, kind: str, backup_id: str) -> Path:
    return repo / policy / kind / backup_id / "manifest.json"


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _refused(result: Any, *fragments: str) -> None:
    assert result.code == REFUSED, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# ---------------------------------------------------------------- manifests and models


def _model_dir(root: Path, version: str) -> None:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "weights.bin").write_bytes(version.encode() * 1000)
    (root / "sub" / "vocab.json").write_text('{"a": 1}')
    (root / "VERSION").write_text(version + "\n")


@pytest.fixture
def models(tmp_path: Path, backupctl: Any) -> dict[str, Any]:
    """Two stored versions of a model (v1, v2; v2 served), and a sentinel beside it."""
    served = tmp_path / "srv" / "llm"
    policy = model_policy(
        tmp_path / "policies", "llm", served, tmp_path / "repo", {"check": "*/15 * * * *"}
    )
    ids = []
    for version in ("v1", "v2"):
        _model_dir(served, version)
        result = backupctl("backup", "llm", "--json", policies=policy)
        assert result.code == 0, result.output
        ids.append(json.loads(result.stdout)["backup_id"])
    return {
        "policy": policy,
        "served": served,
        "repo": tmp_path / "repo",
        "v1": ids[0],
        "manifest": _manifest_path(tmp_path / "repo", "llm", "version", ids[0]),
        "untouched": _sentinel(tmp_path / "srv" / "sentinel"),
        "run": lambda *args: backupctl(*args, policies=policy),
    }


def _entry(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in data["details"]["entries"] if e["path"] == name)


def _add_entries(*entries: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    def change(data: dict[str, Any]) -> None:
        for make in entries:
            data["details"]["entries"].append(make(data))

    return change


def _file_like_weights(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: {**_entry(data, "weights.bin"), "path": path}


MODEL_ATTACKS: dict[str, Callable[[Path], Any]] = {
    # a file entry whose path climbs out of the staging directory, next to the model
    "dotdot-path": lambda s: _add_entries(_file_like_weights("../sentinel/evil")),
    "absolute-path": lambda s: _add_entries(_file_like_weights(str(s / "evil"))),
    # a symlink to the sentinel, then a file "inside" it: written through the link
    "write-through-symlink": lambda s: _add_entries(
        lambda d: {"path": "link", "kind": "symlink", "mode": 0o777, "target": str(s)},
        _file_like_weights("link/evil"),
    ),
    # a directory entry at the path of a symlink: its mode would be set through the link
    "chmod-through-symlink": lambda s: _add_entries(
        lambda d: {"path": "link", "kind": "symlink", "mode": 0o777, "target": str(s)},
        lambda d: {"path": "link", "kind": "dir", "mode": 0o777},
    ),
    # a served model that links to a host secret
    "symlink-to-host-file": lambda s: _add_entries(
        lambda d: {"path": "config.json", "kind": "symlink", "mode": 0o777, "target": "/etc/passwd"}
    ),
    "symlink-climbing-out": lambda s: _add_entries(
        lambda d: {"path": "sub/up", "kind": "symlink", "mode": 0o777, "target": "../../sentinel"}
    ),
    "malformed-entry": lambda s: _add_entries(lambda d: {"path": "x", "kind": "fifo", "mode": 1}),
}


@pytest.mark.parametrize("attack", sorted(MODEL_ATTACKS))
def test_model_restore_refuses_entries_that_leave_the_model(
    attack: str, models: dict[str, Any]
) -> None:
    sentinel = models["served"].parent / "sentinel"
    _edit(models["manifest"], MODEL_ATTACKS[attack](sentinel))
    result = models["run"]("restore", "llm", models["v1"], "--yes")
    _refused(result, "refusing model version")
    models["untouched"]()
    assert (models["served"] / "VERSION").read_text() == "v2\n"  # still served as it was
    leftovers = [p.name for p in models["served"].parent.iterdir() if p.name.startswith(".llm")]
    assert leftovers == []  # no staging directory was left behind either


MANIFEST_ATTACKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "key-climbing-out": (
        lambda d: d["artifacts"][0].update(key="../../../srv/sentinel/keep"),
        "unsafe object key",
    ),
    "absolute-key": (lambda d: d["artifacts"][0].update(key="/etc/passwd"), "unsafe object key"),
    "key-of-another-policy": (
        lambda d: d["artifacts"][0].update(key="other/blobs/aa/" + "a" * 64 + ".zst"),
        "lies outside backup",
    ),
    "key-of-another-backup": (
        lambda d: d["artifacts"][0].update(key="llm/version/20000101T000000Z-abcdef/x.zst"),
        "lies outside backup",
    ),
    "control-characters-in-a-name": (
        lambda d: d["artifacts"][0].update(name="data\x1b[2J.zst"),
        "invalid artifact name",
    ),
    "another-backup-id": (
        lambda d: d.update(backup_id="20000101T000000Z-abcdef"),
        "describes backup llm/version/20000101T000000Z-abcdef",
    ),
    "policy-with-a-path": (lambda d: d.update(policy="../../etc"), "invalid policy"),
    "kind-with-a-path": (lambda d: d.update(kind="../full"), "invalid policy or kind"),
}


@pytest.mark.parametrize("attack", sorted(MANIFEST_ATTACKS))
def test_manifests_naming_what_is_not_theirs_are_refused(
    attack: str, models: dict[str, Any]
) -> None:
    change, message = MANIFEST_ATTACKS[attack]
    _edit(models["manifest"], change)
    for args in (
        ("restore", "llm", models["v1"], "--yes"),
        ("verify", "llm", models["v1"]),
        ("catalog", "sync"),
    ):
        result = models["run"](*args)
        _refused(result, "refusing manifest", message)
    models["untouched"]()
    assert (models["served"] / "VERSION").read_text() == "v2\n"


@pytest.mark.parametrize("content", [b"[]", b'"x"', b"[" * 100_000, b"{}"])
def test_a_manifest_that_is_not_one_is_an_error_not_a_crash(
    content: bytes, models: dict[str, Any]
) -> None:
    """These were internal errors (AttributeError, RecursionError) before: now exit 1,
    naming the manifest."""
    models["manifest"].write_bytes(content)
    result = models["run"]("catalog", "sync")
    assert result.code == 1, result.output
    assert "invalid manifest" in result.stderr and str(models["manifest"]) in result.stderr
    assert "internal error" not in result.output


def test_tampered_drill_reports_are_ignored(models: dict[str, Any]) -> None:
    drills = models["repo"] / "llm" / "drills"
    good = models["run"]("drill", "run", "llm", "--json")
    assert good.code == 0, good.output
    bad = {
        "20260101T000000Z-aaaaaa": b"[1, 2]",
        "20260101T000000Z-bbbbbb": json.dumps({"drill_id": "x", "policy": "llm"}).encode(),
        "20260101T000000Z-cccccc": json.dumps(
            {**json.loads(good.stdout), "drill_id": "20260101T000000Z-cccccc", "rpo_seconds": "1"}
        ).encode(),
        "20260101T000000Z-dddddd": json.dumps(
            {**json.loads(good.stdout), "drill_id": "20260101T000000Z-eeeeee"}
        ).encode(),
    }
    for drill_id, content in bad.items():
        (drills / drill_id).mkdir(parents=True)
        (drills / drill_id / "report.json").write_bytes(content)
    listed = models["run"]("drill", "list", "llm", "--json")
    assert listed.code == 0, listed.output
    assert [r["drill_id"] for r in json.loads(listed.stdout)] == [
        json.loads(good.stdout)["drill_id"]
    ]
    for args in (("status", "llm"), ("drill", "run", "llm"), ("metrics",)):
        result = models["run"](*args)
        assert result.code in (0, 1) and "internal error" not in result.output, result.output


# ---------------------------------------------------------------- MariaDB: the mbstream


def _chunk(path: bytes, payload: bytes) -> bytes:
    """One mbstream payload chunk and the file's end-of-file chunk."""
    head = b"XBSTCK01\x00P" + struct.pack("<I", len(path)) + path
    head += struct.pack("<QQI", len(payload), 0, zlib.crc32(payload))
    return head + payload + b"XBSTCK01\x00E" + struct.pack("<I", len(path)) + path


def _replace_stream(repo: Path, backup_id: str, stream: bytes) -> None:
    """Store ``stream`` as the backup's data and make the manifest agree (size, sha256)."""
    stored = zstandard.ZstdCompressor().compress(stream)
    prefix = repo / "shop" / "full" / backup_id
    (prefix / "data.mbstream.zst").write_bytes(stored)

    def change(data: dict[str, Any]) -> None:
        for artifact in data["artifacts"]:
            if artifact["name"] == "data.mbstream.zst":
                artifact.update(
                    raw_bytes=len(stream),
                    stored_bytes=len(stored),
                    sha256=hashlib.sha256(stored).hexdigest(),
                )

    _edit(prefix / "manifest.json", change)


@pytest.mark.parametrize(
    "name",
    [b"../sentinel/pwned", b"shop/../../sentinel/pwned", b"{sentinel}/pwned", b"ok\x00/../x"],
)
def test_mariadb_restore_refuses_a_stream_naming_files_outside_the_target(
    name: bytes, mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "policies", mariadb_server, f"file://{tmp_path / 'repo'}")
    backup = backupctl("backup", "shop", "--json", policies=policy)
    assert backup.code == 0, backup.output
    backup_id = json.loads(backup.stdout)["backup_id"]
    untouched = _sentinel(tmp_path / "sentinel")
    name = name.replace(b"{sentinel}", os.fsencode(tmp_path / "sentinel"))
    # a harmless file first (mbstream writes it), then the hostile one
    _replace_stream(tmp_path / "repo", backup_id, _chunk(b"ok.txt", b"ok\n") + _chunk(name, b"x"))
    target = tmp_path / "copy"  # staging is tmp_path/.copy.restore-<run>: ../sentinel is ours
    result = backupctl(
        "restore", "shop", backup_id, "--target-datadir", str(target), "--yes", policies=policy
    )
    _refused(result, "outside the target directory")
    untouched()
    deep = backupctl(
        "verify",
        "shop",
        backup_id,
        "--deep",
        "--scratch-dir",
        str(tmp_path / "scr"),
        policies=policy,
    )
    assert deep.code == REFUSED and "internal error" not in deep.output, deep.output
    untouched()


def test_pitr_refuses_binlog_names_that_are_paths(
    mariadb_server: MariaDBServer, tmp_path: Path, backupctl: Any
) -> None:
    policy = mariadb_policy(tmp_path / "policies", mariadb_server, f"file://{tmp_path / 'repo'}")
    backup = backupctl("backup", "shop", "--json", policies=policy)
    assert backup.code == 0, backup.output
    manifest = json.loads(backup.stdout)
    assert manifest["details"]["binlog"]["file"]  # the chain starts there
    _edit(
        _manifest_path(tmp_path / "repo", "shop", "full", manifest["backup_id"]),
        lambda d: d["details"]["binlog"].update(file="../../sentinel/mysql-bin.000001"),
    )
    target = tmp_path / "copy"
    result = backupctl(
        "restore", "shop", "--to-time", "2999-01-01 00:00:00", "--target-datadir", str(target),
        "--dry-run", policies=policy,
    )  # fmt: skip
    _refused(result, "refusing binlog name")


def test_the_stream_check_follows_headers_split_anywhere() -> None:
    """The checker sees the stream in arbitrary pieces (zstd's output sizes): every
    split of a stream finds the hostile name, and a clean stream passes whole."""
    clean = _chunk(b"ibdata1", b"a" * 300) + _chunk(b"shop/orders.ibd", b"b" * 70)
    hostile = clean + _chunk(b"../x", b"c")
    for data, unsafe in ((clean, False), (hostile, True)):
        for size in range(1, 40):
            names = _StreamNames("test")
            pieces = [data[i : i + size] for i in range(0, len(data), size)]
            if unsafe:
                with pytest.raises(_UnsafeName, match="outside the target"):
                    for piece in pieces:
                        names.check(piece)
            else:
                for piece in pieces:
                    names.check(piece)


def test_binlog_names_from_the_repository_never_become_paths(tmp_path: Path) -> None:
    """Replaying binlogs names a file in scratch after each (its tool's messages): a
    tampered name is refused before anything is written."""

    class Target:
        def check(self, repo: Any, full: Any) -> list[ChainLink]:
            return [ChainLink("../../sentinel/mysql-bin.000001", (), {})]

    untouched = _sentinel(tmp_path / "sentinel")
    scratch = tmp_path / "a" / "b" / "scratch"
    step = ReplayBinlogs(None, None, Target(), tmp_path / "sock", scratch)  # type: ignore[arg-type]
    with pytest.raises(VerificationFailed, match="refusing binlog name"):
        step.run(RunContext("test"))
    untouched()
    assert not scratch.exists()


# ---------------------------------------------------------------- config-git: Git trees


def _git(git_dir: Path, *args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], input=data, capture_output=True, check=True
    )
    return proc.stdout.decode().strip()


def _tree(git_dir: Path, entries: list[tuple[str, bytes, str]]) -> str:
    """A tree object with exactly ``entries`` (mode, name, id): no checks, as an attacker
    writes one."""
    raw = b"".join(
        mode.encode() + b" " + name + b"\0" + bytes.fromhex(sha) for mode, name, sha in entries
    )
    return _git(git_dir, "hash-object", "-t", "tree", "--literally", "-w", "--stdin", data=raw)


@pytest.fixture
def configs(tmp_path: Path, backupctl: Any) -> dict[str, Any]:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "app.conf").write_text("listen 80\n")
    data = {
        "version": 1,
        "name": "configs",
        "driver": "config-git",
        "paths": [str(etc)],
        "repository": f"file://{tmp_path / 'history.git'}",
    }
    policy = tmp_path / "policies" / "configs.yaml"
    policy.parent.mkdir()
    policy.write_text(yaml.safe_dump(data))
    result = backupctl("backup", "configs", "--json", policies=policy)
    assert result.code == 0, result.output
    backup_id = json.loads(result.stdout)["backup_id"]
    git_dir = tmp_path / "history.git"
    return {
        "git": git_dir,
        "id": backup_id,
        "manifest": _manifest_path(git_dir / "backupctl", "configs", "commit", backup_id),
        "run": lambda *args: backupctl(*args, policies=policy),
        "untouched": _sentinel(tmp_path / "sentinel"),
        "target": tmp_path / "restored" / "here",
        "sentinel": tmp_path / "sentinel",
    }


def _crafted_commit(c: dict[str, Any], attack: str) -> str:
    git = c["git"]
    blob = _git(git, "hash-object", "-w", "--stdin", data=b"evil\n")
    link = _git(git, "hash-object", "-w", "--stdin", data=os.fsencode(c["sentinel"]))
    leaf = _tree(git, [("100644", b"evil", blob)])
    if attack == "dotdot-tree":  # target/../../sentinel/evil
        up = _tree(git, [("40000", b"sentinel", leaf)])
        root = _tree(git, [("40000", b"..", _tree(git, [("40000", b"..", up)]))])
    elif attack == "dot-tree":  # (an empty name git itself refuses to read)
        root = _tree(git, [("40000", b".", _tree(git, [("40000", b"..", leaf)]))])
    else:  # a symlink "etc" to the sentinel and a tree "etc" holding a file: written through
        root = _tree(git, [("120000", b"etc", link), ("40000", b"etc", leaf)])
    return _git(git, "commit-tree", root, "-m", "crafted", data=None)


@pytest.mark.parametrize("attack", ["dotdot-tree", "dot-tree", "file-through-symlink"])
def test_config_restore_refuses_a_crafted_git_tree(attack: str, configs: dict[str, Any]) -> None:
    commit = _crafted_commit(configs, attack)
    _edit(configs["manifest"], lambda d: d["details"].update(commit=commit))
    result = configs["run"](
        "restore", "configs", "--at", configs["id"], "--target-dir", str(configs["target"])
    )
    _refused(result, "refusing commit", "outside the target directory")
    configs["untouched"]()
    assert not configs["target"].exists() or not any(configs["target"].iterdir())


def test_config_restore_refuses_a_commit_id_that_is_an_option(configs: dict[str, Any]) -> None:
    _edit(configs["manifest"], lambda d: d["details"].update(commit="--output=/tmp/x"))
    result = configs["run"](
        "restore", "configs", "--at", configs["id"], "--target-dir", str(configs["target"])
    )
    _refused(result, "refusing commit id")
    configs["untouched"]()


# ---------------------------------------------------------------- Elasticsearch names


@pytest.fixture
def search(tmp_path: Path, es_cluster: Any, backupctl: Any) -> dict[str, Any]:
    es = es_cluster.client()
    for index in ("orders", "users"):
        es.indices.create(index=index)
        es.index(index=index, document={"n": 1}, refresh=True)
    data = {
        "version": 1,
        "name": "search",
        "driver": "elasticsearch",
        "connection": {"url": es_cluster.url},
        "snapshot_repository": {
            "name": "tamper",
            "type": "fs",
            "settings": {"location": es_cluster.repo_location("tamper")},
        },
        "repository": f"file://{tmp_path / 'repo'}",
        "indices": ["orders"],
        "restore": {"recovery_timeout": "30s"},
    }
    policy = tmp_path / "policies" / "search.yaml"
    policy.parent.mkdir()
    policy.write_text(yaml.safe_dump(data))
    result = backupctl("backup", "search", "--json", policies=policy)
    assert result.code == 0, result.output
    backup_id = json.loads(result.stdout)["backup_id"]
    return {
        "es": es,
        "fake": es_cluster.fake,
        "id": backup_id,
        "manifest": _manifest_path(tmp_path / "repo", "search", "snapshot", backup_id),
        "run": lambda *args: backupctl(*args, policies=policy),
    }


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda d: d["details"]["indices"].update({"*": {}}), "index '*'"),
        (lambda d: d["details"]["indices"].update({"_all": {}}), "index '_all'"),
        (lambda d: d["details"]["indices"].update({"orders,users": {}}), "index 'orders,users'"),
        (lambda d: d["details"].update(snapshot="*"), "snapshot '*'"),
        (lambda d: d["details"].update(repository="_all"), "repository '_all'"),
    ],
)
def test_elasticsearch_names_from_a_manifest_are_refused(
    change: Callable[[dict[str, Any]], None], what: str, search: dict[str, Any]
) -> None:
    _edit(search["manifest"], change)
    if search["fake"] is not None:
        search["fake"].clear_requests()
    for args in (
        ("restore", "search", search["id"], "--yes"),
        ("verify", "search", search["id"]),
    ):
        _refused(search["run"](*args), what)
    # nothing was closed, deleted or restored: no request but reads, and both indices answer
    if search["fake"] is not None:
        assert [r.path for r in search["fake"].calls() if r.method != "GET"] == []
    assert search["es"].count(index="users")["count"] == 1
    assert search["es"].count(index="orders")["count"] == 1
