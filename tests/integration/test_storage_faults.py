"""Storage faults: every S3 request of real backups and restores goes through a proxy that
answers 500/503, throttles (429/503 SlowDown), resets connections before and after the
request took effect, and answers slowly (tests/support/faultproxy.py), in front of moto.

- each fault, twice in a row, on each kind of request S3Repository sends (the lease lock
  included) is survived, with a logged retry for each; a completion whose answer was lost
  is recognised when the retry finds no upload, and an upload aborted behind the
  writer's back is an error;
- transient faults (BACKUPCTL_FAULT_RATE of requests, default 15%): full and binlog
  backups, model backups, verify, a point-in-time restore into ``--target-datadir``,
  ``catalog sync`` and ``prune`` all succeed, every failed request is retried and logged,
  and the restored server holds exactly the data (CHECKSUM TABLE);
- persistent faults from the middle of a backup: exit 1 naming the S3 problem, nothing
  listed, and the next run (faults gone) succeeds and removes what was left;
- persistent faults from the middle of an in-place restore's download: exit 1, the
  original datadir is back and the server serves the original data.

BACKUPCTL_FAULT_SEED replays a run; BACKUPCTL_FAULT_ROUNDS repeats the transient
lifecycle (default 1); BACKUPCTL_FAULT_REPORT names a file the figures are appended to
(JSON lines).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from botocore.awsrequest import AWSResponse

from backupctl.demo.server import checksum_tables
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.errors import RepositoryError
from backupctl.retry import RetryPolicy
from backupctl.storage.s3 import RETRY_EVENT, S3Repository
from backupctl.storage.spec import RepositorySpec
from tests.support.cli import CliResult, run_backupctl
from tests.support.faultproxy import FaultProxy, FaultRates, Request
from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import write_model
from tests.support.noise import fill_with_noise
from tests.support.policies import mariadb_policy

RATE = float(os.environ.get("BACKUPCTL_FAULT_RATE", "0.15"))
SEED = int(os.environ.get("BACKUPCTL_FAULT_SEED", "20261122"))
ROUNDS = int(os.environ.get("BACKUPCTL_FAULT_ROUNDS", "1"))
REPORT = os.environ.get("BACKUPCTL_FAULT_REPORT")
PREFIX = "backups"
#: what a run logs when a best-effort request failed every try and it carried on (the lock
#: left behind expires, and the next run on this host takes it over at once)
GAVE_UP_EVENTS = frozenset(
    {"could not store mariabackup's log", "could not release the lock; its lease expires"}
)
MIB = 1 << 20
DATA = "data.mbstream.zst"


@dataclass
class Operation:
    """One CLI run through the proxy and what it went through."""

    name: str
    code: int
    requests: int
    faults: dict[str, int]  # injected during it, by kind
    retries: int  # s3.retry lines it logged
    gave_up: int  # best-effort requests that failed every try (logged, the run went on)
    seconds: float

    @property
    def failures(self) -> int:
        return sum(n for kind, n in self.faults.items() if kind != "delay")


@dataclass
class Ledger:
    """Runs backupctl through the proxy, recording faults and retries per operation."""

    proxy: FaultProxy
    state: Path
    operations: list[Operation]

    def run(self, name: str, *args: str, policies: Path, state: Path | None = None) -> CliResult:
        before, requests = Counter(self.proxy.injected), self.proxy.requests
        first_fault = len(self.proxy.history)
        started = time.monotonic()
        head = ["--state-dir", str(state or self.state), "--log-format", "json"]
        result = run_backupctl([*head, "--policies", str(policies), *args], timeout=900)
        faults = Counter(self.proxy.injected)
        faults.subtract(before)
        retried = retry_events(result)
        gave_up = [e for e in _log(result) if e["event"] in GAVE_UP_EVENTS]
        failed = [f for f in self.proxy.history[first_fault:] if f[0] != "delay"]
        if len(retried) + len(gave_up) != len(failed):  # say which, for the totals' assertion
            tried = [(e["operation"], e["url"], e["error"]) for e in retried]
            print(f"{name}: faults {failed}\nretries {tried}\ngave up {gave_up}")
        self.operations.append(
            Operation(
                name,
                result.code,
                self.proxy.requests - requests,
                {kind: n for kind, n in sorted(faults.items()) if n},
                len(retried),
                len(gave_up),
                round(time.monotonic() - started, 1),
            )
        )
        return result

    def ok(self, name: str, *args: str, policies: Path, state: Path | None = None) -> CliResult:
        """``run``, and fail the test unless it succeeded."""
        result = self.run(name, *args, policies=policies, state=state)
        assert result.code == 0, f"{name} failed through the faults:\n{result.output[-4000:]}"
        assert "Traceback" not in result.output
        return result

    def table(self) -> str:
        lines = [f"{'operation':<24} exit requests failures retries gave-up delays seconds"]
        for op in self.operations:
            lines.append(
                f"{op.name:<24} {op.code:>4} {op.requests:>8} {op.failures:>8} {op.retries:>7} "
                f"{op.gave_up:>7} {op.faults.get('delay', 0):>6} {op.seconds:>7}"
            )
        return "\n".join(lines)


def retry_events(result: CliResult) -> list[dict[str, Any]]:
    """The ``s3.retry`` JSON log lines of a run."""
    return [entry for entry in _log(result) if entry["event"] == RETRY_EVENT]


def _log(result: CliResult) -> list[dict[str, Any]]:
    """The JSON log lines of a run."""
    entries = []
    for line in result.stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "event" in entry:
            entries.append(entry)
    return entries


def error_line(result: CliResult) -> str:
    return next(line for line in result.stderr.splitlines() if line.startswith("error: "))


def _record(test: str, ledger: Ledger, proxy: FaultProxy, **extra: Any) -> None:
    print(f"\n{test}: seed {proxy.seed}, rates {proxy.rates}\n{ledger.table()}")
    print(f"faults injected: {dict(proxy.injected)}; by operation: {dict(proxy.by_operation)}")
    if REPORT:
        entry = {
            "test": test,
            "seed": proxy.seed,
            "failure_rate": round(proxy.rates.total - proxy.rates.delay, 4),
            "delay_rate": proxy.rates.delay,
            "injected": dict(proxy.injected),
            "requests": proxy.requests,
            "operations": [asdict(op) for op in ledger.operations],
            **extra,
        }
        with open(REPORT, "a") as out:
            out.write(json.dumps(entry) + "\n")


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint, seed=SEED) as running:
        yield running


@pytest.fixture
def ledger(proxy: FaultProxy, tmp_path: Path) -> Ledger:
    return Ledger(proxy, tmp_path / "state", [])


def _repository(bucket: str, proxy: FaultProxy) -> dict[str, Any]:
    return {"url": f"s3://{bucket}/{PREFIX}", "endpoint_url": proxy.url, "part_size_mb": 5}


def _shop_policy(tmp_path: Path, server: MariaDBServer, bucket: str, proxy: FaultProxy) -> Path:
    stop, start = server.instance.write_service_hooks(tmp_path / "hooks")
    return mariadb_policy(
        tmp_path / "policies",
        server,
        _repository(bucket, proxy),
        schedule={"full": "0 2 * * *", "binlog": "0 * * * *"},
        retention={"full": "30d", "binlog": "7d"},
        restore={"stop": [str(stop)], "start": [str(start)], "health_timeout": "60s"},
    )


def _model_policy(policies: Path, served: Path, bucket: str, proxy: FaultProxy) -> None:
    data = {
        "version": 1,
        "name": "llm",
        "driver": "model",
        "path": str(served),
        "version_from": "VERSION",
        "repository": _repository(bucket, proxy),
        "schedule": {"check": "*/15 * * * *"},
        "retention": {"keep_versions": 1},
    }
    (policies / "llm.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _checksums(server: MariaDBServer) -> dict[str, Any]:
    conn = server.connect()
    try:
        return checksum_tables(conn)
    finally:
        conn.close()


def _fill(server: MariaDBServer, size_mb: int, noise_mb: int = 11) -> None:
    """Enough stored bytes that a backup spans several 5 MiB parts."""
    fill_with_noise(server, size_mb, noise_mb)


def _bucket_state(client: Any, bucket: str) -> tuple[list[str], list[str]]:
    """(object keys, keys of pending multipart uploads), read from moto directly."""
    objects = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    ]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


MATRIX_OPERATIONS = (
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "GetObject",
    "HeadObject",
    "ListObjects",
    "DeleteObjects",
    "ListMultipartUploads",
    "DeleteObject",
)
MATRIX_FAULTS = ("500", "503", "slowdown", "reset-request", "reset-response")


def _repository_cycle(repo: S3Repository, key: str, data: bytes) -> None:
    """Every kind of request backupctl sends: the lock, a multipart and a single PUT,
    ranged reads, HEAD, listing, batch delete and the pending-upload sweep."""
    with repo.lock("shop", "matrix"):
        with repo.open_write(f"{key}/data") as writer:
            writer.write(data)
            writer.commit()
        repo.put_bytes(f"{key}/manifest.json", b"{}")
        assert repo.get_bytes(f"{key}/data") == data
        assert repo.exists(f"{key}/manifest.json") and not repo.exists(f"{key}/missing")
        assert [o.key for o in repo.list(f"{key}/")] == [f"{key}/data", f"{key}/manifest.json"]
        assert repo.delete_prefix(key) >= 2


def test_every_fault_on_every_request_kind_is_survived(
    proxy: FaultProxy, s3_bucket: str, s3_client: Any
) -> None:
    """Each fault, twice in a row (so throttling answers both 429 and 503), on each kind of
    request, through S3Repository with the CLI's number of attempts (no waiting)."""
    spec = RepositorySpec(**_repository(s3_bucket, proxy))
    repo = S3Repository.from_spec(spec, retry=RetryPolicy(initial=0, maximum=0, jitter=0))
    data = os.urandom(5 * MIB + 1024)  # two parts
    survived = Counter[str]()
    for fault in MATRIX_FAULTS:
        for operation in MATRIX_OPERATIONS:
            proxy.inject(lambda r, op=operation: r.operation == op, fault, times=2)
            with structlog.testing.capture_logs() as logs:
                _repository_cycle(repo, f"matrix/{fault}/{operation}", data)
            retried = [e for e in logs if e["event"] == RETRY_EVENT]
            assert len(retried) == 2, (fault, operation, logs)
            survived[fault] += 2
    assert proxy.injected == survived
    objects, uploads = _bucket_state(s3_client, s3_bucket)
    assert objects == []
    # the upload orphaned when CreateMultipartUpload's answer was lost went with its prefix
    assert uploads == []


class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _no_such_upload(client: Any, first: int = 1) -> list[str]:
    """Answer CompleteMultipartUpload with S3's 404 NoSuchUpload from the ``first``-th on
    (moto answers 500 for an upload it does not know, and completes a completed one again).
    Returns the URLs of the completions sent."""
    sent: list[str] = []

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        sent.append(request.url)
        if len(sent) < first:
            return None
        xml = b"<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>"
        return AWSResponse(request.url, 404, {"Content-Type": "application/xml"}, _Body(xml))

    client.meta.events.register("before-send.s3.CompleteMultipartUpload", before_send)
    return sent


def test_a_completion_whose_answer_was_lost_is_recognised(
    proxy: FaultProxy, s3_bucket: str, s3_client: Any
) -> None:
    spec = RepositorySpec(**_repository(s3_bucket, proxy))
    repo = S3Repository.from_spec(spec, retry=RetryPolicy(initial=0, maximum=0, jitter=0))
    proxy.inject(lambda r: r.operation == "CompleteMultipartUpload", "reset-response")
    sent = _no_such_upload(repo.client, first=2)  # what AWS or MinIO say to the retry
    data = os.urandom(5 * MIB + 1024)
    with repo.open_write("shop/full/x/data") as writer:
        writer.write(data)
        writer.commit()
    assert len(sent) == 2  # completed, answer lost, retried: NoSuchUpload
    assert repo.get_bytes("shop/full/x/data") == data
    assert _bucket_state(s3_client, s3_bucket) == ([f"{PREFIX}/shop/full/x/data"], [])


def test_an_upload_aborted_behind_the_writers_back_is_an_error(
    proxy: FaultProxy, s3_bucket: str, s3_client: Any
) -> None:
    spec = RepositorySpec(**_repository(s3_bucket, proxy))
    repo = S3Repository.from_spec(spec, retry=RetryPolicy(initial=0, maximum=0, jitter=0))
    writer = repo.open_write("shop/full/x/data")
    writer.write(os.urandom(10 * MIB))
    (upload,) = s3_client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]
    ids = {"Bucket": s3_bucket, "Key": upload["Key"], "UploadId": upload["UploadId"]}
    deadline = time.monotonic() + 30
    while len(s3_client.list_parts(**ids).get("Parts", [])) < 2:  # both parts are up
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for upload in s3_client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]:
        s3_client.abort_multipart_upload(
            Bucket=s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    _no_such_upload(repo.client)
    with pytest.raises(RepositoryError, match="is gone before it was completed"):
        writer.commit()
    assert _bucket_state(s3_client, s3_bucket) == ([], [])


def test_everything_succeeds_through_transient_faults(
    fresh_mariadb: MariaDBServer,
    proxy: FaultProxy,
    ledger: Ledger,
    s3_bucket: str,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    server = fresh_mariadb
    policy = _shop_policy(tmp_path, server, s3_bucket, proxy)
    policies = policy.parent
    served = tmp_path / "models" / "llm"
    _model_policy(policies, served, s3_bucket, proxy)
    _fill(server, 8)
    proxy.set_rates(FaultRates.spread(RATE, delay=RATE / 3, delay_seconds=0.2))
    ok = ledger.ok
    fulls, binlogs = [], []
    for n in range(1, ROUNDS + 1):
        full = ok(f"backup full #{n}", "backup", "shop", "--json", policies=policies)
        fulls.append(json.loads(full.stdout)["backup_id"])
        server.sql(
            f"CREATE TABLE shop.round_{n} (id INT PRIMARY KEY, note VARCHAR(40))",
            f"INSERT INTO shop.round_{n} SELECT seq, CONCAT('row ', seq) FROM shop.seq_1_to_5000",
            f"DELETE FROM shop.orders WHERE id % 7 = {n % 7}",
        )
        gtid = str(server.sql("SELECT @@gtid_binlog_pos")[0][0])
        expected = _checksums(server)
        binlog = ok(
            f"backup binlog #{n}", "backup", "shop", "--type", "binlog", "--json", policies=policies
        )
        binlogs.append(json.loads(binlog.stdout)["backup_id"])

        write_model(served, f"v{2 * n - 1}")
        (served / "weights.bin").write_bytes(os.urandom(6 * MIB))  # more than one S3 part
        ok(f"model backup #{n}a", "backup", "llm", policies=policies)
        write_model(served, f"v{2 * n}")
        ok(f"model backup #{n}b", "backup", "llm", policies=policies)

        for backup_id in (fulls[-1], binlogs[-1]):
            verified = ok(f"verify #{n}", "verify", "shop", backup_id, "--json", policies=policies)
            assert json.loads(verified.stdout)["passed"]

        target = tmp_path / f"restored-{n}"
        restored = ok(
            f"restore to-gtid #{n}",
            "restore",
            "shop",
            *("--target-datadir", str(target), "--to-gtid", gtid, "--json"),
            policies=policies,
        )
        assert json.loads(restored.stdout)["passed"]
        with MariaDBInstance.for_datadir(target, tmp_path / f"restored-run-{n}") as copy:
            conn = copy.connect()
            try:
                assert checksum_tables(conn) == expected  # the data, to the transaction
            finally:
                conn.close()

        new_host = tmp_path / f"new-host-{n}"
        ok(f"catalog sync #{n}", "catalog", "sync", policies=policies, state=new_host)
        listed = ok(f"list #{n}", "list", "--json", policies=policies, state=new_host)
        shop = [b["backup_id"] for b in json.loads(listed.stdout) if b["policy"] == "shop"]
        assert sorted(shop) == sorted(fulls + binlogs)

        pruned = ok(f"prune #{n}", "prune", "--json", policies=policies)
        assert "llm" in pruned.stdout
        models = json.loads(ok("list llm", "list", "llm", "--json", policies=policies).stdout)
        assert [m["details"]["version"] for m in models] == [f"v{2 * n}"]  # keep_versions: 1

    ops = ledger.operations
    _record("transient", ledger, proxy)
    failures, retries = sum(op.failures for op in ops), sum(op.retries for op in ops)
    gave_up = sum(op.gave_up for op in ops)
    assert failures > 0, "no fault was injected: the test proved nothing"
    # every request the proxy failed was retried, and each retry was logged; a best-effort
    # request (mariabackup's log) that failed all its tries is logged too, and the run went on
    assert retries + gave_up == failures, ledger.table()
    objects, uploads = _bucket_state(s3_client, s3_bucket)
    started = {key.rsplit("/", 1)[0] for key in objects if key.endswith("/started.json")}
    complete = {key.rsplit("/", 1)[0] for key in objects if key.endswith("/manifest.json")}
    assert started <= complete, "a backup was left half-written"
    assert f"{PREFIX}/shop/lock.json" not in objects and f"{PREFIX}/llm/lock.json" not in objects
    # a retried CreateMultipartUpload whose answer was lost leaves an empty upload behind
    # (no parts, no cost), removed with its backup; nothing else may be pending
    created_twice = proxy.by_operation[("reset-response", "CreateMultipartUpload")]
    assert len(uploads) <= created_twice


def test_persistent_faults_fail_a_backup_cleanly_and_the_next_run_cleans_up(
    fresh_mariadb: MariaDBServer,
    proxy: FaultProxy,
    ledger: Ledger,
    s3_bucket: str,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    policy = _shop_policy(tmp_path, fresh_mariadb, s3_bucket, proxy)
    _fill(fresh_mariadb, 8)
    # S3 goes down once the data upload is under way: a part stored, the second one refused
    parts: list[Request] = []

    def second_part(request: Request) -> bool:
        if request.operation == "UploadPart" and DATA in request.path:
            parts.append(request)
        return len(parts) >= 2

    proxy.persist_when(second_part)
    failed = ledger.run("backup (S3 down)", "backup", "shop", policies=policy)
    assert failed.code == 1, failed.output
    assert "Traceback" not in failed.output
    message = error_line(failed)
    assert f"s3://{s3_bucket}/{PREFIX}/shop/full/" in message and DATA in message, message
    assert "ServiceUnavailable" in message, message
    assert len(retry_events(failed)) >= 4  # it tried before giving up
    print(f"\nbackup with S3 down: {message}")
    proxy.transient()

    objects, uploads = _bucket_state(s3_client, s3_bucket)
    started = [key for key in objects if key.endswith("/started.json")]
    assert len(started) == 1 and not any(key.endswith("/manifest.json") for key in objects)
    assert uploads == [started[0].replace("started.json", DATA)]  # its abort failed too
    assert json.loads(ledger.ok("list", "list", "--json", policies=policy).stdout) == []
    elsewhere = tmp_path / "new-host"
    ledger.ok("catalog sync", "catalog", "sync", policies=policy, state=elsewhere)
    listed = ledger.ok("list (synced)", "list", "--json", policies=policy, state=elsewhere)
    assert json.loads(listed.stdout) == []

    # S3 is back: the next run takes over the dead run's lock, removes its leftovers, succeeds
    after = ledger.ok("backup (S3 back)", "backup", "shop", "--json", policies=policy)
    backup_id = json.loads(after.stdout)["backup_id"]
    failed_id = started[0].split("/")[3]
    removed = [e for e in _log(after) if e["event"].startswith("removed incomplete backup")]
    assert [e["prefix"] for e in removed] == [f"shop/full/{failed_id}"]
    objects, uploads = _bucket_state(s3_client, s3_bucket)
    assert uploads == []
    assert {key.split("/")[3] for key in objects if "/full/" in key} == {backup_id}
    listed = ledger.ok("list", "list", "--json", policies=policy)
    assert [b["backup_id"] for b in json.loads(listed.stdout)] == [backup_id]
    _record("persistent-backup", ledger, proxy)


def test_persistent_faults_during_an_in_place_restore_put_the_original_back(
    fresh_mariadb: MariaDBServer,
    proxy: FaultProxy,
    ledger: Ledger,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    server = fresh_mariadb
    policy = _shop_policy(tmp_path, server, s3_bucket, proxy)
    _fill(server, 8)
    ledger.ok("backup", "backup", "shop", policies=policy)
    server.sql(
        "CREATE TABLE shop.after_backup (id INT PRIMARY KEY)",
        "INSERT INTO shop.after_backup VALUES (1), (2), (3)",
    )
    original = _checksums(server)
    siblings = sorted(p.name for p in server.datadir.parent.iterdir())

    # the download breaks half-way (connection reset) and S3 stays down for the resume
    def data_get(r: Request) -> bool:
        return r.operation == "GetObject" and r.path.endswith(DATA)

    proxy.inject(data_get, "reset-response")
    proxy.persist_when(lambda r: data_get(r) and proxy.injected["reset-response"] > 0, "500")
    failed = ledger.run("restore (S3 down)", "restore", "shop", "--yes", "--json", policies=policy)
    assert failed.code == 1, failed.output
    assert "Traceback" not in failed.output
    report = json.loads(failed.stdout)
    assert report["state"] == "failed" and report["error"].startswith("fetch-extract: ")
    assert "InternalError" in report["error"] and DATA in report["error"], report["error"]
    assert "InternalError" in error_line(failed)
    proxy.transient()

    assert server.instance.is_running(), "the start hooks ran after the rollback"
    assert _checksums(server) == original  # the original datadir is back, untouched
    assert sorted(p.name for p in server.datadir.parent.iterdir()) == siblings
    _record("persistent-restore", ledger, proxy)


def test_parallel_parts_and_ranges_survive_faults_mid_transfer(
    proxy: FaultProxy, s3_bucket: str, s3_client: Any
) -> None:
    """Parts go up 4 at a time and ranges come down 4 at a time while the proxy resets,
    throttles and fails a share of the requests: every part and range is retried on its
    own, and the object comes back byte for byte."""
    spec = RepositorySpec(**_repository(s3_bucket, proxy))
    repo = S3Repository.from_spec(spec, retry=RetryPolicy(initial=0, maximum=0, jitter=0))
    repo.range_size = MIB
    assert repo.upload_concurrency == 4 and repo.download_concurrency == 4
    data = os.urandom(36 * MIB + 123)
    proxy.set_rates(FaultRates.spread(0.25))
    with structlog.testing.capture_logs() as logs:
        with repo.open_write("parallel/data") as writer:
            for at in range(0, len(data), 3 * MIB):
                writer.write(data[at : at + 3 * MIB])
            writer.commit()
        assert repo.get_bytes("parallel/data") == data
    proxy.set_rates(FaultRates())
    retried = Counter(e["operation"] for e in logs if e["event"] == RETRY_EVENT)
    assert retried["upload_part"] > 0 and retried["get_object"] > 0, retried
    assert _bucket_state(s3_client, s3_bucket) == ([f"{PREFIX}/parallel/data"], [])
