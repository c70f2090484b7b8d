"""Which backup a new incremental builds on, read from the repository alone: the newest
sound point of this server, or a full taken instead with the reason an operator reads
(no full yet, another server, restored since, LSN gone back, a broken link, max_chain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupctl.catalog.manifest import MANIFEST, Artifact, Manifest
from backupctl.drivers.mariadb.chain import (
    FULL_KIND,
    INCREMENTAL_KIND,
    ServerState,
    catalog_chains,
    chain_of,
    choose_parent,
)
from backupctl.drivers.mariadb.chain_steps import space_needed
from backupctl.drivers.mariadb.driver import MariaDBDriver
from backupctl.drivers.mariadb.restored_mark import RestoredMark, read_mark, write_mark
from backupctl.errors import VerificationFailed
from backupctl.policy.mariadb import MariaDBPolicy
from backupctl.storage import keys
from backupctl.storage.local import LocalRepository

START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SERVER = 7


class History:
    """Backups of policy ``shop`` in a local repository, each an hour after the last, each
    ending 1000 LSN after it started."""

    def __init__(self, root: Path):
        self.repo = LocalRepository(root)
        self.points: list[Manifest] = []

    def add(
        self, kind: str, *, server_id: int = SERVER, parent: Manifest | None = None
    ) -> Manifest:
        n = len(self.points)
        backup_id = (START + timedelta(hours=n)).strftime("%Y%m%dT%H%M%SZ") + f"-{n:04x}"
        details: dict[str, object] = {
            "server_version": "10.11.6-MariaDB",
            "server_datadir": "/var/lib/mysql",
            "log_bin": True,
            "server_id": server_id,
            "databases": [],
            "datadir": "/var/lib/mysql",
            "lsn": {"from_lsn": 0, "to_lsn": 1000 * (n + 1), "last_lsn": 1000 * (n + 1) + 10},
        }
        if kind == INCREMENTAL_KIND:
            assert parent is not None
            base = IncrementalBase.of(parent)
            details |= {
                "parent": parent.backup_id,
                "parent_kind": parent.kind,
                "base": base[0],
                "chain_length": base[1] + 1,
                "incremental_lsn": 1000 * n,
            }
        prefix = f"shop/{kind}/{backup_id}"
        data = b"x" * (100 + n)
        self.repo.put_bytes(keys.join(prefix, "data.mbstream.zst"), data)
        manifest = Manifest(
            backup_id=backup_id,
            policy="shop",
            driver="mariadb",
            kind=kind,
            started_at=START + timedelta(hours=n),
            finished_at=START + timedelta(hours=n, minutes=5),
            artifacts=[
                Artifact(
                    name="data.mbstream.zst",
                    key=keys.join(prefix, "data.mbstream.zst"),
                    raw_bytes=1000,
                    stored_bytes=len(data),
                    sha256="0" * 64,
                )
            ],
            details=details,
        )
        self.repo.put_bytes(keys.join(prefix, MANIFEST), manifest.to_json().encode())
        self.points.append(manifest)
        return manifest

    def choose(
        self,
        *,
        server_id: int = SERVER,
        lsn: int | None = 10**9,
        restored: RestoredMark | None = None,
        max_chain: int | None = None,
    ) -> tuple[str | None, str | None]:
        choice = choose_parent(
            self.repo, self.points, ServerState(server_id, lsn, restored), max_chain
        )
        return (choice.parent.backup_id if choice.parent else None), choice.reason


class IncrementalBase:
    @staticmethod
    def of(parent: Manifest) -> tuple[str, int]:
        if parent.kind == FULL_KIND:
            return parent.backup_id, 1
        return str(parent.details["base"]), int(str(parent.details["chain_length"]))


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "repo")


def test_the_newest_point_of_this_server_is_the_parent(history: History) -> None:
    full = history.add(FULL_KIND)
    first = history.add(INCREMENTAL_KIND, parent=full)
    assert history.choose() == (first.backup_id, None)
    assert [m.backup_id for m in chain_of(history.repo, first)] == [
        full.backup_id,
        first.backup_id,
    ]
    assert catalog_chains(history.points) == [[full, first]]


def test_no_full_yet(history: History) -> None:
    assert history.choose() == (None, "there is no full backup to build on yet")


def test_another_servers_backup_is_no_parent(history: History) -> None:
    history.add(FULL_KIND, server_id=99)
    parent, reason = history.choose()
    assert parent is None
    assert reason is not None and "is from server id 99, this server is 7" in reason


def test_a_server_whose_lsn_went_back_gets_a_full(history: History) -> None:
    full = history.add(FULL_KIND)
    history.add(INCREMENTAL_KIND, parent=full)  # to_lsn 2000, last_lsn 2010
    parent, reason = history.choose(lsn=1500)  # restored from the full, by hand
    assert parent is None
    assert reason is not None
    assert "the server's LSN 1500 is behind the newest backup's 2010" in reason
    assert history.choose(lsn=2010)[0] is not None


def test_a_restore_since_the_newest_backup_starts_a_new_chain(
    history: History, tmp_path: Path
) -> None:
    full = history.add(FULL_KIND)
    datadir = tmp_path / "data"
    datadir.mkdir()
    write_mark(
        datadir, RestoredMark(full.backup_id, "run-1", full.finished_at + timedelta(minutes=10))
    )
    mark = read_mark(datadir)
    assert mark is not None and mark.backup_id == full.backup_id
    parent, reason = history.choose(restored=mark)
    assert parent is None
    assert reason is not None and "a chain does not continue across a restore" in reason
    # a mark older than the newest backup (a backup taken after the restore) is no obstacle
    again = history.add(FULL_KIND)
    assert history.choose(restored=mark) == (again.backup_id, None)


def test_an_unreadable_mark_is_no_mark(tmp_path: Path) -> None:
    (tmp_path / "backupctl-restored.json").write_text("{not json")
    assert read_mark(tmp_path) is None
    assert read_mark(tmp_path / "nowhere") is None


def test_a_broken_link_below_the_parent_means_a_full(history: History) -> None:
    full = history.add(FULL_KIND)
    first = history.add(INCREMENTAL_KIND, parent=full)
    history.add(INCREMENTAL_KIND, parent=first)
    (history.repo.root / first.artifacts[0].key).unlink()
    parent, reason = history.choose()
    assert parent is None
    assert reason is not None
    assert f"incremental {first.backup_id} of the chain is broken" in reason
    assert "data.mbstream.zst is missing" in reason


def test_a_truncated_object_is_a_broken_link(history: History) -> None:
    full = history.add(FULL_KIND)
    (history.repo.root / full.artifacts[0].key).write_bytes(b"short")
    parent, reason = history.choose()
    assert parent is None
    assert reason is not None and f"is 5 bytes, its manifest says {full.stored_bytes}" in reason


def test_a_missing_manifest_in_the_chain_is_named(history: History) -> None:
    full = history.add(FULL_KIND)
    first = history.add(INCREMENTAL_KIND, parent=full)
    (history.repo.root / full.prefix / MANIFEST).unlink()
    with pytest.raises(VerificationFailed, match=f"its link {full.backup_id}"):
        chain_of(history.repo, first)
    parent, reason = history.choose()
    assert parent is None and reason is not None and full.backup_id in reason


def test_max_chain_counts_the_full(history: History) -> None:
    full = history.add(FULL_KIND)
    first = history.add(INCREMENTAL_KIND, parent=full)
    assert history.choose(max_chain=3)[0] == first.backup_id
    parent, reason = history.choose(max_chain=2)
    assert parent is None
    assert reason == f"the chain of {full.backup_id} has 2 links (max_chain)"


def test_a_manifest_naming_the_wrong_base_is_refused(history: History) -> None:
    full = history.add(FULL_KIND)
    first = history.add(INCREMENTAL_KIND, parent=full)
    tampered = first.model_copy(update={"details": {**first.details, "base": "someone-else"}})
    with pytest.raises(VerificationFailed, match="tampered"):
        chain_of(history.repo, tampered)


def _driver(tmp_path: Path, retention: dict[str, str]) -> MariaDBDriver:
    return MariaDBDriver(
        MariaDBPolicy.model_validate(
            {
                "version": 1,
                "name": "shop",
                "driver": "mariadb",
                "connection": {"host": "127.0.0.1", "user": "backup"},
                "datadir": str(tmp_path / "data"),
                "repository": f"file://{tmp_path / 'repo'}",
                "schedule": {"full": "0 2 * * 0", "incremental": "0 2 * * 1-6"},
                "retention": retention,
            }
        )
    )


def test_the_driver_keeps_a_full_while_a_kept_incremental_builds_on_it(
    history: History, tmp_path: Path
) -> None:
    full = history.add(FULL_KIND)
    first = history.add(INCREMENTAL_KIND, parent=full)
    second = history.add(INCREMENTAL_KIND, parent=first)
    newer = history.add(FULL_KIND)
    now = newer.finished_at + timedelta(hours=1)
    # fulls kept 90 minutes, incrementals (unset) as long as fulls: the old chain goes whole
    driver = _driver(tmp_path, {"full": "90m"})
    gone = {d.backup_id for d in driver.retention(history.points, now) if not d.keep}
    assert gone == {full.backup_id, first.backup_id, second.backup_id}
    # incrementals kept 5 hours: the full past its own retention stays for them
    driver = _driver(tmp_path, {"full": "90m", "incremental": "5h"})
    decisions = {d.backup_id: d for d in driver.retention(history.points, now)}
    assert all(d.keep for d in decisions.values())
    assert f"needed by incremental {first.backup_id}" in decisions[full.backup_id].reason


def test_the_space_a_restore_needs_counts_the_largest_link_and_the_binlogs(
    history: History,
) -> None:
    full = history.add(FULL_KIND)  # every link: 1000 bytes unpacked
    first = history.add(INCREMENTAL_KIND, parent=full)
    second = history.add(INCREMENTAL_KIND, parent=first)
    assert space_needed([full]) == 1000
    # incrementals are unpacked one at a time beside the base, then removed
    assert space_needed([full, first, second]) == 2000
    # binlogs to replay stream through; what they change is written again as data
    assert space_needed([full, first, second], replay_bytes=300) == 2300
