"""S3Repository against a real S3 endpoint over HTTP (moto's server, or MinIO when
BACKUPCTL_TEST_S3_ENDPOINT is set)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ResponseStreamingError

from backupctl.errors import ObjectNotFound, RepositoryError
from backupctl.retry import RetryPolicy
from backupctl.storage.base import ObjectInfo
from backupctl.storage.factory import open_repository
from backupctl.storage.s3 import S3Repository
from backupctl.storage.spec import RepositorySpec

pytest_plugins = ["tests.support.s3"]

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=3, initial=0, maximum=0, jitter=0)
UNSAFE_KEYS = ["../x", "a/../../b", "..", "/etc/passwd", "a//b", "a/./b", "", "a b"]

MakeRepo = Callable[..., S3Repository]


@pytest.fixture
def make_repo(s3_endpoint: str, s3_bucket: str) -> MakeRepo:
    def make(prefix: str = "backups", bucket: str = s3_bucket, **options: Any) -> S3Repository:
        url = f"s3://{bucket}/{prefix}".rstrip("/")
        spec = RepositorySpec(url=url, endpoint_url=s3_endpoint, **options)
        return S3Repository.from_spec(spec, retry=FAST)

    return make


@pytest.fixture
def repo(make_repo: MakeRepo) -> S3Repository:
    return make_repo(part_size_mb=5)


def pending_uploads(client: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def bucket_keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


class _RawBody:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


def inject_failures(client: Any, operation: str, failures: list[Any]) -> list[str]:
    """Make the next HTTP requests of ``operation`` (e.g. "PutObject") fail, one per item
    of ``failures``: an exception to raise, or (status, code) for an S3 error answer.
    Returns the list of every request sent for that operation (real ones included)."""
    sent: list[str] = []

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        sent.append(request.url)
        if len(sent) > len(failures):
            return None
        failure = failures[len(sent) - 1]
        if isinstance(failure, Exception):
            raise failure
        status, code = failure
        xml = f"<Error><Code>{code}</Code><Message>injected {code}</Message></Error>"
        headers = {"Content-Type": "application/xml"}
        return AWSResponse(request.url, status, headers, _RawBody(xml.encode()))

    client.meta.events.register(f"before-send.s3.{operation}", before_send)
    return sent


def count_requests(client: Any) -> list[str]:
    sent: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    return sent


def retry_logs(logs: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    return [(e["attempt"], e["operation"]) for e in logs if e["event"] == "s3.retry"]


# --- streaming writes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "parts"),
    [(0, None), (1000, None), (5 * MIB, 1), (10 * MIB, 2), (12 * MIB + 7, 3)],
)
def test_object_round_trips_byte_for_byte(
    repo: S3Repository, s3_client: Any, s3_bucket: str, size: int, parts: int | None
) -> None:
    data = os.urandom(size)
    with repo.open_write("shop-db/full.xbstream") as writer:
        for start in range(0, size, 1_000_003):  # odd-sized writes straddle part boundaries
            writer.write(data[start : start + 1_000_003])
        assert not repo.exists("shop-db/full.xbstream"), "visible before commit"
        writer.commit()

    assert writer.bytes_written == size
    assert b"".join(repo.iter_read("shop-db/full.xbstream", chunk_size=MIB)) == data
    assert list(repo.list()) == [ObjectInfo("shop-db/full.xbstream", size)]
    etag = s3_client.head_object(Bucket=s3_bucket, Key="backups/shop-db/full.xbstream")["ETag"]
    if parts is None:  # small objects go up in one PUT, no multipart upload
        assert "-" not in etag
    else:
        assert etag.strip('"').endswith(f"-{parts}")
    assert pending_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize("calculation", ["when_supported", "when_required", None])
def test_a_multipart_object_carries_a_whole_object_checksum_when_the_policy_asks(
    make_repo: MakeRepo,
    s3_client: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    calculation: str | None,
) -> None:
    # the repository's option decides, whatever the environment says
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
    options = {"checksums": calculation} if calculation else {}  # default: when_required
    repo = make_repo(part_size_mb=5, upload_concurrency=3, **options)
    sent = inject_failures(repo.client, "UploadPart", [])
    headers: list[dict[str, str]] = []
    repo.client.meta.events.register(
        "before-send.s3.UploadPart", lambda request, **_: headers.append(dict(request.headers))
    )
    data = os.urandom(11 * MIB)
    with repo.open_write("big") as writer:
        writer.write(data)
        writer.commit()
    assert repo.get_bytes("big") == data
    head = s3_client.head_object(Bucket=s3_bucket, Key="backups/big", ChecksumMode="ENABLED")
    # S3 checked every part's CRC32 and keeps one for the object; without per-part
    # checksums (when_required, the default: S3-compatible stores may refuse them) no
    # part carries one, none is declared, and the upload still completes
    assert len(sent) == 3
    crc = [any(k.lower() == "x-amz-checksum-crc32" for k in h) for h in headers]
    assert crc == [calculation == "when_supported"] * 3
    assert bool(head.get("ChecksumCRC32")) == (calculation == "when_supported")


def test_one_big_write_is_split_into_parts(repo: S3Repository, s3_client: Any, s3_bucket: str):
    data = os.urandom(11 * MIB)
    with repo.open_write("big") as writer:
        writer.write(data)
        writer.commit()
    assert repo.get_bytes("big") == data
    etag = s3_client.head_object(Bucket=s3_bucket, Key="backups/big")["ETag"]
    assert etag.strip('"').endswith("-3")


def _parts_of(s3_client: Any, s3_bucket: str, key: str) -> int:
    etag = s3_client.head_object(Bucket=s3_bucket, Key=f"backups/{key}")["ETag"]
    return int(etag.strip('"').rsplit("-", 1)[1])


def test_parts_grow_so_an_object_fits_in_the_parts_s3_allows(
    repo: S3Repository, s3_client: Any, s3_bucket: str
) -> None:
    repo.max_parts = 6  # S3's 10,000, scaled down: at 5 MiB a part, 30 MiB at most
    data = os.urandom(64 * MIB)
    with repo.open_write("grown") as writer:
        for at in range(0, len(data), MIB):
            writer.write(data[at : at + MIB])
        writer.commit()
    assert repo.get_bytes("grown") == data
    assert _parts_of(s3_client, s3_bucket, "grown") <= 6


def test_a_size_estimate_picks_the_part_size_up_front(
    repo: S3Repository, s3_client: Any, s3_bucket: str
) -> None:
    repo.max_parts = 10
    data = os.urandom(40 * MIB)
    # 40 MiB with a quarter to spare in 8 parts: 7 MiB parts, the object in 6
    with repo.open_write("planned", size_hint=len(data)) as writer:
        writer.write(data)
        writer.commit()
    assert repo.get_bytes("planned") == data
    assert _parts_of(s3_client, s3_bucket, "planned") == 6


def test_memory_does_not_grow_with_object_size(repo: S3Repository) -> None:
    # 4 parts in flight (upload_concurrency) and one filling: 25 MiB, for 120 MiB or 1 TB
    assert repo.upload_concurrency == 4
    chunk = os.urandom(MIB)
    tracemalloc.start()
    try:
        with repo.open_write("stream") as writer:
            for _ in range(120):
                writer.write(chunk)
            writer.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert repo.exists("stream")
    bound = (repo.upload_concurrency + 2) * repo.part_size
    assert peak < bound, f"peak {peak / MIB:.1f} MiB for a 120 MiB object"


def test_a_big_object_is_read_in_ranges_several_at_once_in_order(
    repo: S3Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.range_size = 2 * MIB
    data = os.urandom(41 * MIB + 7)
    with repo.open_write("big") as writer:
        writer.write(data)
        writer.commit()
    real_get_object = repo.client.get_object
    ranges: list[str] = []
    at_once, running = [0], [0]

    def get_object(**params: Any) -> Any:
        ranges.append(params.get("Range", "-"))
        running[0] += 1
        at_once[0] = max(at_once[0], running[0])
        try:
            return real_get_object(**params)
        finally:
            running[0] -= 1

    monkeypatch.setattr(repo.client, "get_object", get_object)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        for chunk in repo.iter_read("big"):
            digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.digest() == hashlib.sha256(data).digest()
    # a ranged GET of the first 2 MiB (its answer gives the size), then 20 more ranges of
    # 2 MiB (the last short)
    assert ranges[0] == f"bytes=0-{2 * MIB - 1}" and len(ranges) == 21
    assert sorted(ranges[1:], key=lambda r: int(r.split("=")[1].split("-")[0])) == [
        f"bytes={a}-{min(a + 2 * MIB, len(data)) - 1}" for a in range(2 * MIB, len(data), 2 * MIB)
    ]
    assert 1 < at_once[0] <= repo.download_concurrency
    # memory: a few ranges in flight and one handed on, whatever the object's size
    assert peak < (repo.download_concurrency + 2) * repo.range_size, peak


def test_a_range_cut_off_is_fetched_again_alone(
    repo: S3Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.range_size = MIB
    data = os.urandom(6 * MIB)
    repo.put_bytes("big", data)
    real_get_object = repo.client.get_object
    calls: list[str] = []

    def get_object(**params: Any) -> Any:
        calls.append(params.get("Range", "-"))
        response = real_get_object(**params)
        if (
            params.get("Range") == f"bytes={3 * MIB}-{4 * MIB - 1}"
            and calls.count(params["Range"]) == 1
        ):
            response["Body"] = _BreaksAfter(response["Body"], 1000)
        return response

    monkeypatch.setattr(repo.client, "get_object", get_object)
    with structlog.testing.capture_logs() as logs:
        assert b"".join(repo.iter_read("big")) == data
    assert calls.count(f"bytes={3 * MIB}-{4 * MIB - 1}") == 2  # that range, and only it, again
    assert len(calls) == 7
    assert retry_logs(logs) == [(1, "get_object")]


def test_a_big_object_replaced_while_read_in_ranges_fails(
    repo: S3Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.range_size = MIB
    repo.put_bytes("big", os.urandom(8 * MIB))
    reader = repo.iter_read("big")
    assert len(next(reader)) > 0  # the first range came from the original object
    repo.put_bytes("big", os.urandom(8 * MIB))  # ranges 4-7 are not even asked for yet
    with pytest.raises(RepositoryError, match="PreconditionFailed"):
        b"".join(reader)


def test_writer_refuses_use_after_commit(repo: S3Repository) -> None:
    with repo.open_write("k") as writer:
        writer.write(b"abc")
        writer.commit()
    with pytest.raises(RepositoryError, match="already committed"):
        writer.write(b"more")
    writer.abort()  # a no-op once committed
    assert repo.get_bytes("k") == b"abc"


# --- nothing left behind ----------------------------------------------------------------


def test_aborted_writer_leaves_no_object_and_no_upload(
    repo: S3Repository, s3_client: Any, s3_bucket: str
) -> None:
    writer = repo.open_write("shop-db/partial")
    writer.write(os.urandom(6 * MIB))  # the first part is already uploaded
    assert pending_uploads(s3_client, s3_bucket) == ["backups/shop-db/partial"]

    writer.abort()
    writer.abort()  # aborting twice is fine

    assert not repo.exists("shop-db/partial")
    assert list(repo.list()) == []
    assert pending_uploads(s3_client, s3_bucket) == []
    assert bucket_keys(s3_client, s3_bucket) == []
    with pytest.raises(RepositoryError, match="already aborted"):
        writer.write(b"x")


def test_exception_inside_with_block_aborts(
    repo: S3Repository, s3_client: Any, s3_bucket: str
) -> None:
    with pytest.raises(RuntimeError, match="dump failed"), repo.open_write("a/b") as writer:
        writer.write(os.urandom(7 * MIB))
        raise RuntimeError("dump failed")

    assert not repo.exists("a/b")
    assert pending_uploads(s3_client, s3_bucket) == []
    assert bucket_keys(s3_client, s3_bucket) == []


def test_delete_prefix_removes_objects_and_pending_uploads(
    repo: S3Repository, s3_client: Any, s3_bucket: str
) -> None:
    repo.put_bytes("shop-db/b1/manifest.json", b"{}")
    repo.put_bytes("shop-db/b1/data/part-0", b"x" * 100)
    repo.put_bytes("shop-db/b10/manifest.json", b"{}")  # shares the string prefix "b1"
    writer = repo.open_write("shop-db/b1/data/part-1")
    writer.write(os.urandom(6 * MIB))  # left open: a pending multipart upload

    assert repo.delete_prefix("shop-db/b1") == 3

    assert [info.key for info in repo.list()] == ["shop-db/b10/manifest.json"]
    assert pending_uploads(s3_client, s3_bucket) == []


def test_killed_backup_leaves_nothing_after_delete_prefix(
    repo: S3Repository, s3_endpoint: str, s3_client: Any, s3_bucket: str
) -> None:
    repo.put_bytes("shop-db/keep/manifest.json", b"{}")
    script = textwrap.dedent(
        """
        import os, signal, sys
        from backupctl.storage.s3 import S3Repository
        from backupctl.storage.spec import RepositorySpec
        spec = RepositorySpec(url=sys.argv[1], endpoint_url=sys.argv[2], part_size_mb=5)
        writer = S3Repository.from_spec(spec).open_write("shop-db/run1/full.xbstream")
        writer.write(os.urandom(6 * 1024 * 1024))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, repo.url, s3_endpoint], env=env, timeout=120, check=False
    )
    assert done.returncode == -signal.SIGKILL
    assert pending_uploads(s3_client, s3_bucket) == ["backups/shop-db/run1/full.xbstream"]
    assert not repo.exists("shop-db/run1/full.xbstream")

    assert repo.delete_prefix("shop-db/run1") == 1

    assert pending_uploads(s3_client, s3_bucket) == []
    assert bucket_keys(s3_client, s3_bucket) == ["backups/shop-db/keep/manifest.json"]


# --- keys, listing, errors --------------------------------------------------------------


def test_list_strips_prefix_and_shows_only_committed_objects(
    make_repo: MakeRepo, s3_client: Any, s3_bucket: str
) -> None:
    repo = make_repo("site/backups", part_size_mb=5)
    for key in ("b/2", "a/10", "a/1"):
        repo.put_bytes(key, key.encode())
    s3_client.put_object(Bucket=s3_bucket, Key="site/other/x", Body=b"not ours")
    s3_client.put_object(Bucket=s3_bucket, Key="site/backupsX/y", Body=b"not ours either")
    writer = repo.open_write("a/pending")
    writer.write(os.urandom(6 * MIB))

    assert list(repo.list()) == [
        ObjectInfo("a/1", 3),
        ObjectInfo("a/10", 4),
        ObjectInfo("b/2", 3),
    ]
    assert [info.key for info in repo.list("a/")] == ["a/1", "a/10"]
    assert list(repo.list("nothing/")) == []
    assert s3_client.get_object(Bucket=s3_bucket, Key="site/backups/a/1")["Body"].read() == b"a/1"
    writer.abort()


def test_list_pages_through_many_objects(make_repo: MakeRepo, s3_client: Any, s3_bucket: str):
    repo = make_repo("p")
    keys = [f"k/{i:04d}" for i in range(1005)]  # list_objects_v2 pages hold 1000 keys
    for key in keys:
        s3_client.put_object(Bucket=s3_bucket, Key=f"p/{key}", Body=b"")
    assert [info.key for info in repo.list()] == keys
    assert repo.delete_prefix("k") == 1005
    assert bucket_keys(s3_client, s3_bucket) == []


def test_missing_key_raises_object_not_found(repo: S3Repository, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/backups/nope/manifest.json"
    with pytest.raises(ObjectNotFound) as caught:
        repo.get_bytes("nope/manifest.json")
    assert str(caught.value) == f"{url} does not exist"
    with pytest.raises(ObjectNotFound):
        next(repo.iter_read("nope/manifest.json"))
    assert not repo.exists("nope/manifest.json")
    repo.delete("nope/manifest.json")  # deleting a missing key is not an error


def test_missing_bucket_is_a_clear_error_and_not_retried(make_repo: MakeRepo) -> None:
    repo = make_repo(bucket="backupctl-no-such-bucket")
    sent = count_requests(repo.client)
    calls: list[Callable[[], Any]] = [
        lambda: repo.get_bytes("k"),
        lambda: repo.put_bytes("k", b"x"),
        lambda: list(repo.list()),
        lambda: repo.exists("k"),
    ]
    with structlog.testing.capture_logs() as logs:
        for call in calls:
            with pytest.raises(RepositoryError) as caught:
                call()
            assert not isinstance(caught.value, ObjectNotFound)
            message = str(caught.value)
            assert "'backupctl-no-such-bucket' does not exist" in message
            assert "s3://backupctl-no-such-bucket/" in message
            assert "\n" not in message and "Traceback" not in message
    assert len(sent) == 5  # one request each; exists() asks HEAD object, then HEAD bucket
    assert retry_logs(logs) == []


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused(
    repo: S3Repository, s3_client: Any, s3_bucket: str, key: str
) -> None:
    sent = count_requests(repo.client)
    attempts: list[Callable[[], Any]] = [
        lambda: repo.open_write(key),
        lambda: repo.put_bytes(key, b"x"),
        lambda: repo.get_bytes(key),
        lambda: repo.exists(key),
        lambda: repo.delete(key),
        lambda: repo.delete_prefix(key),
    ]
    for attempt in attempts:
        with pytest.raises(RepositoryError, match="unsafe object key"):
            attempt()
    assert sent == []
    assert bucket_keys(s3_client, s3_bucket) == []


def test_storage_class_is_applied(make_repo: MakeRepo, s3_client: Any, s3_bucket: str) -> None:
    repo = make_repo(storage_class="STANDARD_IA", part_size_mb=5)
    repo.put_bytes("small", b"x")
    with repo.open_write("large") as writer:
        writer.write(os.urandom(6 * MIB))
        writer.commit()
    for key in ("backups/small", "backups/large"):
        assert s3_client.head_object(Bucket=s3_bucket, Key=key)["StorageClass"] == "STANDARD_IA"

    make_repo("plain").put_bytes("k", b"x")
    head = s3_client.head_object(Bucket=s3_bucket, Key="plain/k")
    assert head.get("StorageClass", "STANDARD") == "STANDARD"


def test_factory_opens_s3_repository(s3_endpoint: str, s3_bucket: str) -> None:
    repo = open_repository(RepositorySpec(url=f"s3://{s3_bucket}/x/y", endpoint_url=s3_endpoint))
    assert isinstance(repo, S3Repository)
    assert repo.url == f"s3://{s3_bucket}/x/y"
    repo.put_bytes("m.json", b"{}")
    assert repo.get_bytes("m.json") == b"{}"


def test_missing_credentials_are_reported(
    make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    repo = make_repo()
    with pytest.raises(RepositoryError, match="no AWS credentials for s3://"):
        repo.put_bytes("k", b"x")


# --- retries ----------------------------------------------------------------------------


def test_transient_error_is_retried_logged_then_succeeds(repo: S3Repository) -> None:
    sent = inject_failures(
        repo.client, "PutObject", [(503, "SlowDown"), (503, "ServiceUnavailable")]
    )
    with structlog.testing.capture_logs() as logs:
        repo.put_bytes("k", b"payload")
    assert repo.get_bytes("k") == b"payload"
    assert len(sent) == 3  # tenacity is the only retry layer: botocore did not retry on its own
    assert retry_logs(logs) == [(1, "put_object"), (2, "put_object")]
    retries = [e for e in logs if e["event"] == "s3.retry"]
    assert all(e["log_level"] == "warning" for e in retries)
    assert "SlowDown" in retries[0]["error"] and "ServiceUnavailable" in retries[1]["error"]


def test_part_upload_is_retried_after_a_dropped_connection(
    repo: S3Repository, s3_client: Any, s3_bucket: str
) -> None:
    inject_failures(repo.client, "UploadPart", [ConnectionClosedError(endpoint_url="http://x")])
    data = os.urandom(12 * MIB)
    with structlog.testing.capture_logs() as logs, repo.open_write("big") as writer:
        writer.write(data)
        writer.commit()
    assert repo.get_bytes("big") == data
    assert retry_logs(logs) == [(1, "upload_part")]
    assert pending_uploads(s3_client, s3_bucket) == []


def test_retries_are_bounded(repo: S3Repository, s3_bucket: str) -> None:
    sent = inject_failures(repo.client, "PutObject", [(500, "InternalError")] * 10)
    with structlog.testing.capture_logs() as logs, pytest.raises(RepositoryError) as caught:
        repo.put_bytes("k", b"x")
    assert len(sent) == FAST.attempts
    assert len(retry_logs(logs)) == FAST.attempts - 1
    assert str(caught.value) == (
        f"S3 put_object on s3://{s3_bucket}/backups/k failed: InternalError: injected InternalError"
    )


@pytest.mark.parametrize(
    ("operation", "status", "code", "hint"),
    [
        ("CompleteMultipartUpload", 400, "EntityTooSmall", "repository.part_size_mb"),
        ("UploadPart", 400, "EntityTooLarge", "repository.part_size_mb"),
        ("UploadPart", 503, "SlowDown", "repository.upload_concurrency"),
        ("UploadPart", 429, "TooManyRequests", "repository.upload_concurrency"),
    ],
)
def test_a_store_refusing_the_part_size_or_the_concurrency_says_what_to_change(
    repo: S3Repository,
    s3_client: Any,
    s3_bucket: str,
    operation: str,
    status: int,
    code: str,
    hint: str,
) -> None:
    inject_failures(repo.client, operation, [(status, code)] * FAST.attempts * 3)
    with pytest.raises(RepositoryError) as caught, repo.open_write("big") as writer:
        writer.write(os.urandom(11 * MIB))
        writer.commit()
    message = str(caught.value)
    assert code in message and hint in message and "\n" not in message
    assert not repo.exists("big") and pending_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (400, "InvalidArgument")])
def test_permanent_errors_are_not_retried(repo: S3Repository, status: int, code: str) -> None:
    sent = inject_failures(repo.client, "PutObject", [(status, code)] * 5)
    with structlog.testing.capture_logs() as logs, pytest.raises(RepositoryError) as caught:
        repo.put_bytes("k", b"x")
    assert len(sent) == 1
    assert retry_logs(logs) == []
    assert "s3://" in str(caught.value) and "\n" not in str(caught.value)
    if code == "AccessDenied":
        assert "access denied" in str(caught.value)


def test_failed_part_upload_aborts_the_upload(
    repo: S3Repository, s3_client: Any, s3_bucket: str
) -> None:
    # every try of both parts fails (they go up at once, sharing the injected failures)
    inject_failures(repo.client, "UploadPart", [(500, "InternalError")] * FAST.attempts * 2)
    # parts go up in the background: the failure surfaces at the next part or the commit
    with pytest.raises(RepositoryError, match="InternalError"), repo.open_write("big") as writer:
        writer.write(os.urandom(6 * MIB))
        writer.commit()
    assert pending_uploads(s3_client, s3_bucket) == []
    assert not repo.exists("big")


def test_unreachable_endpoint_is_retried_then_reported(s3_bucket: str) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    spec = RepositorySpec(url=f"s3://{s3_bucket}/b", endpoint_url=endpoint)
    repo = S3Repository.from_spec(spec, retry=FAST)
    with structlog.testing.capture_logs() as logs, pytest.raises(RepositoryError) as caught:
        repo.put_bytes("k", b"x")
    assert str(caught.value).startswith(f"cannot reach s3://{s3_bucket}/b/k in 3 tries:")
    assert retry_logs(logs) == [(1, "put_object"), (2, "put_object")]


class _BreaksAfter:
    """A response body whose connection drops after ``limit`` bytes."""

    def __init__(self, body: Any, limit: int):
        self._body, self._left = body, limit

    def read(self, amt: int | None = None) -> bytes:
        if self._left <= 0:
            raise ResponseStreamingError(error="Connection reset by peer")
        data: bytes = self._body.read(min(amt or self._left, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._body.close()


def _break_first_download(
    repo: S3Repository, monkeypatch: pytest.MonkeyPatch, after: int, between: Callable[[], Any]
) -> list[dict[str, Any]]:
    real_get_object = repo.client.get_object
    calls: list[dict[str, Any]] = []

    def get_object(**params: Any) -> Any:
        calls.append(params)
        if len(calls) == 2:
            between()
        response = real_get_object(**params)
        if len(calls) == 1:
            response["Body"] = _BreaksAfter(response["Body"], after)
        return response

    monkeypatch.setattr(repo.client, "get_object", get_object)
    return calls


def test_read_resumes_after_a_dropped_connection(
    repo: S3Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * MIB + 5)
    repo.put_bytes("big", data)
    calls = _break_first_download(repo, monkeypatch, after=MIB, between=lambda: None)
    with structlog.testing.capture_logs() as logs:
        assert b"".join(repo.iter_read("big", chunk_size=256 * 1024)) == data
    assert len(calls) == 2
    assert calls[1]["Range"] == f"bytes={MIB}-{repo.range_size - 1}"  # the rest of the head
    assert calls[1]["IfMatch"]  # the resumed read is pinned to the same object version
    assert retry_logs(logs) == [(1, "get_object")]


def test_read_fails_if_object_changes_while_resuming(
    repo: S3Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.put_bytes("big", os.urandom(2 * MIB))
    _break_first_download(
        repo, monkeypatch, after=MIB, between=lambda: repo.put_bytes("big", b"new content")
    )
    with pytest.raises(RepositoryError, match="PreconditionFailed"):
        b"".join(repo.iter_read("big", chunk_size=256 * 1024))


def test_a_read_can_start_part_way_with_one_ranged_get(repo: S3Repository) -> None:
    """Where a read from another repository broke off, S3 continues with a ranged GET:
    a 1 TB object that failed late on the local disk is not downloaded from its start."""
    data = os.urandom(3 << 20)
    repo.put_bytes("p/big", data)
    sent = count_requests(repo.client)
    assert b"".join(repo.iter_read_from("p/big", 2_500_000, 64 << 10)) == data[2_500_000:]
    assert len([u for u in sent if u.endswith("/p/big")]) == 1
    assert b"".join(repo.iter_read_from("p/big", len(data))) == b""
    assert b"".join(repo.iter_read_from("p/big", 0)) == data
