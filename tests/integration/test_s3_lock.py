"""The lock hosts sharing an S3 repository take: of racing processes exactly one wins,
a live holder's heartbeat keeps it, a dead holder's lease expires and is taken over."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import boto3
import pytest
import yaml

from backupctl.errors import LockHeldError, RepositoryError
from backupctl.storage.lease import LeaseLock
from backupctl.storage.s3 import S3Repository
from backupctl.storage.spec import RepositorySpec

CONTENDER = textwrap.dedent("""
    import sys, time, boto3
    from backupctl.errors import LockHeldError
    from backupctl.storage.lease import LeaseLock
    endpoint, bucket = sys.argv[1], sys.argv[2]
    start, hold, lease = (float(a) for a in sys.argv[3:6])
    client = boto3.client("s3", endpoint_url=endpoint)
    lock = LeaseLock(client, bucket, "shop/lock.json", "test", lease)
    time.sleep(max(0.0, start - time.time()))
    try:
        lock.acquire()
    except LockHeldError as exc:
        print("held:", exc, flush=True)
        sys.exit(3)
    print("won", flush=True)
    time.sleep(hold)
    lock.release()
""")


def _contender(endpoint: str, bucket: str, start: float, hold: float, lease: float) -> Any:
    args = [sys.executable, "-c", CONTENDER, endpoint, bucket, str(start), str(hold), str(lease)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_of_racing_processes_exactly_one_wins(s3_endpoint: str, s3_bucket: str) -> None:
    start = time.time() + 2.0  # all start together, after their imports
    procs = [_contender(s3_endpoint, s3_bucket, start, 2.0, 30) for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    winners = [out for out, _err in outputs if out.startswith("won")]
    assert len(winners) == 1, outputs
    assert sorted(p.returncode for p in procs) == [0, 3, 3, 3]
    assert all("is held by" in out or out.startswith("won") for out, _ in outputs)


def test_a_live_holder_keeps_it_and_a_dead_ones_lease_expires(
    s3_endpoint: str, s3_bucket: str
) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    holder = _contender(s3_endpoint, s3_bucket, 0, 60, lease=1.5)
    assert holder.stdout is not None
    assert holder.stdout.readline().startswith("won")
    time.sleep(3)  # two leases: only the heartbeat keeps it
    other = LeaseLock(client, s3_bucket, "shop/lock.json", "test", lease=1.5)
    try:
        other.acquire()
        raise AssertionError("took a lock whose holder is alive")
    except LockHeldError as exc:
        assert "is held by" in str(exc)
    holder.send_signal(signal.SIGKILL)  # dies without releasing
    holder.communicate()
    time.sleep(2)
    other.acquire()
    try:
        assert other.etag is not None
    finally:
        other.release()
    assert "Contents" not in client.list_objects_v2(Bucket=s3_bucket, Prefix="shop/lock.json")


def test_a_backup_waits_for_no_one_while_another_host_holds_the_policy(
    s3_endpoint: str, s3_bucket: str, tmp_path: Any, backupctl: Any
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "VERSION").write_text("v1\n")
    policy = tmp_path / "llm.yaml"
    repository = {"url": f"s3://{s3_bucket}/backups", "endpoint_url": s3_endpoint}
    policy.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "llm",
                "driver": "model",
                "path": str(model),
                "version_from": "VERSION",
                "repository": repository,
            }
        )
    )
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    other_host = LeaseLock(client, s3_bucket, "backups/llm/lock.json", "backup on db2", 60)
    other_host.acquire()
    try:
        refused = backupctl("backup", "llm", policies=policy)
        assert refused.code == 75  # skipped: try later
        assert "backups/llm/lock.json is held by" in refused.stderr
        assert "backup on db2" in refused.stderr
    finally:
        other_host.release()
    done = backupctl("backup", "llm", policies=policy)
    assert done.code == 0, done.output
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert "backups/llm/lock.json" not in keys, "the lock is released after the backup"


def _repo(s3_endpoint: str, s3_bucket: str, **options: Any) -> Any:
    url = f"s3://{s3_bucket}/backups"
    return S3Repository.from_spec(RepositorySpec(url=url, endpoint_url=s3_endpoint, **options))


def _ignore_conditions(repo: Any) -> None:
    """Make the store behave like one that ignores If-None-Match (the header never goes)."""

    def drop(params: dict[str, Any], **_: Any) -> None:
        params.pop("IfNoneMatch", None)

    repo.client.meta.events.register("before-parameter-build.s3.PutObject", drop)


def test_a_store_that_ignores_conditional_writes_is_refused_for_locking(
    s3_endpoint: str, s3_bucket: str, s3_client: Any
) -> None:
    honest = _repo(s3_endpoint, s3_bucket)
    with honest.lock("shop", "test"):
        pass  # the probe passed on a store that honours If-None-Match
    listed = s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == []  # neither the probe nor the lock is left

    careless = _repo(s3_endpoint, s3_bucket)
    _ignore_conditions(careless)
    refused = pytest.raises(RepositoryError, match="does not honour conditional writes")
    with refused, careless.lock("shop", "test"):
        raise AssertionError("locked on a store that cannot lock")
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []

    single_host = _repo(s3_endpoint, s3_bucket, cross_host_lock=False)
    _ignore_conditions(single_host)
    with single_host.lock("shop", "test"):
        pass  # the operator said only this host writes
