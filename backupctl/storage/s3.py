"""A repository in an S3 bucket (AWS, MinIO, Ceph, …): ``s3://bucket/prefix``.

Credentials come from the standard AWS chain (environment, shared config and
credentials files, SSO, container or instance roles), never from a policy or argv.
botocore's own retries are turned off: ``backupctl.retry`` (tenacity) is the single
retry layer, around each request, for transient errors only.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from backupctl.errors import ObjectNotFound, RepositoryError
from backupctl.retry import DEFAULT_POLICY, RetryPolicy, describe_error, retrying
from backupctl.storage import keys
from backupctl.storage.base import ObjectInfo, ObjectWriter, Repository
from backupctl.storage.keys import validate_key
from backupctl.storage.lease import DEFAULT_LEASE, LeaseLock, held, honours_conditional_writes
from backupctl.storage.parts import MAX_PARTS, MIB, PartSizer
from backupctl.storage.spec import RepositorySpec
from backupctl.storage.transfer import InFlight, OrderedRanges

RETRY_EVENT = "s3.retry"
#: a read of a bigger object fetches the rest in ranges of this size, several at once
RANGE_SIZE = 16 * MIB
_CONNECTION_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ConnectTimeoutError,
)
_STREAM_ERRORS = (*_CONNECTION_ERRORS, ResponseStreamingError, IncompleteReadError)
_TRANSIENT_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"})
# 429: throttling as S3-compatibles (and any S3 answer to HEAD, which has no body to carry
# the SlowDown code) say it
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled"})
#: what to change when a store refuses the parts' size or the requests' concurrency
_PART_SIZE_HINT = "the store refuses parts of this size: set repository.part_size_mb"
_THROTTLE_HINT = (
    "the store throttles this many requests at once: lower repository.upload_concurrency "
    "and download_concurrency"
)
_HINTS = {
    "EntityTooSmall": _PART_SIZE_HINT,
    "EntityTooLarge": _PART_SIZE_HINT,
    "InvalidPart": _PART_SIZE_HINT,
    "SlowDown": _THROTTLE_HINT,
    "TooManyRequests": _THROTTLE_HINT,
    "RequestLimitExceeded": _THROTTLE_HINT,
}
_NEXT_OBJECTS = {"ContinuationToken": "NextContinuationToken"}
_NEXT_UPLOADS = {"KeyMarker": "NextKeyMarker", "UploadIdMarker": "NextUploadIdMarker"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: lost connections, timeouts, throttling and 5xx."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return _code(exc) in _TRANSIENT_CODES or status in _TRANSIENT_STATUS
    return False


def _is_transient_read(exc: BaseException) -> bool:
    return isinstance(exc, _STREAM_ERRORS) or is_transient(exc)


def _checksums_by_default(client: Any) -> bool:
    config = getattr(getattr(client, "meta", None), "config", None)
    return getattr(config, "request_checksum_calculation", None) == "when_supported"


def _object_size(got: dict[str, Any], offset: int) -> int:
    """The whole object's size from a GET's answer: ``Content-Range: bytes a-b/SIZE`` for a
    ranged one, else what it returns after ``offset``."""
    content_range = str(got.get("ContentRange") or "")
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else offset + int(got["ContentLength"])


class S3ObjectWriter(ObjectWriter):
    """A streaming upload holding at most one part in memory.

    A multipart upload starts when the first part fills and each full part is sent
    at once; an object smaller than one part goes up in a single put_object on
    commit(). Nothing is visible under the key before commit().
    """

    def __init__(self, repo: S3Repository, full_key: str, size_hint: int | None = None):
        self._repo = repo
        self._key = full_key
        self._url = repo._object_url(full_key)
        self._sizer = PartSizer(repo.part_size, size_hint, repo.max_parts)
        self._part_size = self._sizer.next(1, 0)
        self._uploaded = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._sent = 0  # parts handed to the uploads in flight
        self._inflight = InFlight(repo.upload_concurrency, self._send_part)
        self._state = "open"  # open -> committed | aborted
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        """Append ``data``, uploading each part as it fills. Raises RepositoryError (the
        upload is then aborted)."""
        self._check_open()
        view = memoryview(data).cast("B")
        while view:
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            self.bytes_written += min(room, len(view))
            view = view[room:]
            if len(self._buffer) >= self._part_size:
                self._abort_on_error(self._upload_part)

    def commit(self) -> None:
        """Make the object visible under its key. Raises RepositoryError (the upload is
        then aborted)."""
        self._check_open()
        self._abort_on_error(self._finish)
        self._state = "committed"

    def abort(self) -> None:
        """Discard the upload. Never raises: a failure is logged, and the leftover
        upload is removed later by ``delete_prefix`` (or a bucket lifecycle rule)."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._buffer = bytearray()
        self._inflight.cancel()  # no part may land after the abort
        if self._upload_id is not None:
            try:
                self._repo._abort_upload(self._key, self._upload_id)
            except RepositoryError as exc:
                structlog.get_logger().warning("s3.abort_failed", url=self._url, error=str(exc))

    def _check_open(self) -> None:
        if self._state != "open":
            raise RepositoryError(f"the upload of {self._url} was already {self._state}")

    def _abort_on_error(self, step: Callable[[], None]) -> None:
        try:
            step()
        except BaseException:
            self.abort()
            raise

    def _upload_part(self) -> None:
        repo = self._repo
        if self._sent >= repo.max_parts:
            raise RepositoryError(
                f"{self._url} is larger than one S3 object can be: {self._uploaded} bytes in "
                f"{self._sent} parts (S3 allows {repo.max_parts} parts of up to 5 GiB "
                "and 5 TiB per object)"
            )
        if self._upload_id is None:
            created = repo._call(
                "create_multipart_upload", Key=self._key, **repo.put_options, **repo.checksums
            )
            self._upload_id = created["UploadId"]
        number, body = self._sent + 1, self._buffer
        self._buffer = bytearray()
        self._inflight.submit(number, number, body)
        self._sent = number
        self._uploaded += len(body)
        self._part_size = self._sizer.next(number + 1, self._uploaded)

    def _send_part(self, number: int, body: bytearray) -> dict[str, str]:
        """Upload one part (in a thread of the uploads in flight); return what
        CompleteMultipartUpload lists for it: its ETag, and its CRC32 when the upload
        declared one."""
        ids: dict[str, Any] = {"Key": self._key, "UploadId": self._upload_id}
        result = self._repo._call("upload_part", PartNumber=number, Body=body, **ids)
        part = {"ETag": str(result["ETag"])}
        if self._repo.checksums and result.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = str(result["ChecksumCRC32"])
        return part

    def _finish(self) -> None:
        repo = self._repo
        if self._upload_id is None:
            repo._call("put_object", Key=self._key, Body=self._buffer, **repo.put_options)
        else:
            if self._buffer:
                self._upload_part()
            self._inflight.drain()
            ids: dict[str, Any] = {"Key": self._key, "UploadId": self._upload_id}
            sent = sorted(self._inflight.results.items())
            parts = {"Parts": [{"PartNumber": n, **part} for n, part in sent]}
            gone = frozenset({"NoSuchUpload"})
            done = repo._call(
                "complete_multipart_upload", ignore=gone, MultipartUpload=parts, **ids
            )
            if done is None and not self._completed_before():
                raise RepositoryError(
                    f"the multipart upload of {self._url} is gone before it was completed "
                    "(aborted by another process or a bucket lifecycle rule?)"
                )
        self._buffer = bytearray()

    def _completed_before(self) -> bool:
        """After NoSuchUpload: True when an earlier try completed the upload but its answer
        was lost (the retry then finds no upload), i.e. the object is there with our size
        and number of parts."""
        try:
            head = self._repo._call("head_object", Key=self._key)
        except ObjectNotFound:
            return False
        etag = str(head.get("ETag", "")).strip('"')
        return head["ContentLength"] == self.bytes_written and etag.endswith(f"-{self._sent}")


class _RetryingLeaseClient:
    """The three client calls the lease lock makes, each retried like the repository's own
    requests. A ClientError from put/get comes through as is (the lock reads its code, e.g.
    PreconditionFailed); every other failure becomes a RepositoryError naming the lock."""

    def __init__(self, repo: S3Repository):
        self._repo = repo

    def _send(self, operation: str, fn: Callable[[], Any], key: str, raw: bool) -> Any:
        repo, url = self._repo, self._repo._object_url(key)
        try:
            return retrying(
                _is_transient_read, RETRY_EVENT, repo.retry, operation=operation, url=url
            )(fn)
        except ClientError as exc:
            if raw:
                raise
            raise repo._error(exc, operation, url) from exc
        except BotoCoreError as exc:
            raise repo._error(exc, operation, url) from exc

    def put_object(self, **params: Any) -> Any:
        client = self._repo.client
        return self._send("put_object", lambda: client.put_object(**params), params["Key"], True)

    def get_object(self, **params: Any) -> Any:
        client = self._repo.client

        def fetch() -> Any:  # the body is read inside the retry: a cut stream is retried too
            reply = client.get_object(**params)
            return {**reply, "Body": io.BytesIO(reply["Body"].read())}

        return self._send("get_object", fetch, params["Key"], True)

    def delete_object(self, **params: Any) -> Any:
        client = self._repo.client
        return self._send(
            "delete_object", lambda: client.delete_object(**params), params["Key"], False
        )


class S3Repository(Repository):
    """Objects under ``prefix/`` in ``bucket``; keys are given and returned without it."""

    def __init__(self, spec: RepositorySpec, client: Any, retry: RetryPolicy = DEFAULT_POLICY):
        self.bucket = spec.location
        self.prefix = spec.prefix
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.part_size = spec.part_size_mb * MIB
        self.max_parts = MAX_PARTS  # S3's; a test lowers it to reach the limit cheaply
        self.upload_concurrency = spec.upload_concurrency
        self.download_concurrency = spec.download_concurrency
        self.range_size = RANGE_SIZE
        self.put_options: dict[str, Any] = (
            {"StorageClass": spec.storage_class} if spec.storage_class else {}
        )
        #: server-side encryption, sent with every object written (the lease lock too, so
        #: a bucket policy that denies unencrypted PUTs does not refuse the lock)
        self.sse_options: dict[str, Any] = {}
        if spec.sse:
            self.sse_options["ServerSideEncryption"] = spec.sse
        if spec.sse_kms_key_id:
            self.sse_options["SSEKMSKeyId"] = spec.sse_kms_key_id
        self.put_options.update(self.sse_options)
        #: when botocore sends a CRC32 with every part (its default, request_checksum_
        #: calculation=when_supported), the multipart upload declares it, so S3 checks
        #: each part and keeps a checksum of the whole object (as s3transfer does)
        self.checksums: dict[str, Any] = (
            {"ChecksumAlgorithm": "CRC32"} if _checksums_by_default(client) else {}
        )
        self.client = client
        self.retry = retry
        self.cross_host_lock = spec.cross_host_lock
        self._conditional_writes: bool | None = None  # probed on the first lock

    @classmethod
    def from_spec(
        cls, spec: RepositorySpec, *, retry: RetryPolicy = DEFAULT_POLICY
    ) -> S3Repository:
        """Return the repository ``spec`` names, with a boto3 client using the standard AWS
        credential chain; no request is sent yet.

        Raises RepositoryError when the AWS configuration cannot be loaded.
        """
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # tenacity is the retry layer
            connect_timeout=10,
            read_timeout=60,
            # every part or range in flight has its connection, and the lock's heartbeat too
            max_pool_connections=2 + max(8, spec.upload_concurrency, spec.download_concurrency),
            # boto3 >= 1.36 sends CRC32s by default, which some S3-compatible stores refuse
            request_checksum_calculation=spec.checksums,
            response_checksum_validation=spec.checksums,
            s3={"addressing_style": "path"} if spec.endpoint_url else None,
        )
        try:
            client = boto3.session.Session().client(
                "s3", endpoint_url=spec.endpoint_url, region_name=spec.region, config=config
            )
        except BotoCoreError as exc:
            raise RepositoryError(f"cannot set up S3 access for {spec.url}: {exc}") from exc
        return cls(spec, client, retry)

    def _full_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _object_url(self, full_key: str = "") -> str:
        return f"s3://{self.bucket}/{full_key}"

    def _call(
        self, operation: str, *, ignore: frozenset[str] = frozenset(), at: str = "", **params: Any
    ) -> Any:
        """Send one request, retrying transient errors; return botocore's response, or None
        when the error code is in ``ignore``. ``at`` names the target in messages when
        params have no Key/Prefix. Raises ObjectNotFound / RepositoryError."""
        url = self._object_url(params.get("Key", params.get("Prefix", at)))
        try:
            return retrying(is_transient, RETRY_EVENT, self.retry, operation=operation, url=url)(
                lambda: getattr(self.client, operation)(Bucket=self.bucket, **params)
            )
        except ClientError as exc:
            if _code(exc) in ignore:
                return None
            raise self._error(exc, operation, url) from exc
        except BotoCoreError as exc:
            raise self._error(exc, operation, url) from exc

    def _error(self, exc: Exception, operation: str, url: str) -> RepositoryError:
        """Return a one-line error naming ``url`` for a botocore exception."""
        if isinstance(exc, NoCredentialsError):
            return RepositoryError(
                f"no AWS credentials for {url}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                "or AWS_PROFILE, or use an instance/container role"
            )
        if isinstance(exc, _STREAM_ERRORS):
            tries = self.retry.attempts
            return RepositoryError(f"cannot reach {url} in {tries} tries: {describe_error(exc)}")
        if not isinstance(exc, ClientError):
            return RepositoryError(f"S3 {operation} on {url} failed: {describe_error(exc)}")
        code = _code(exc)
        if code == "NoSuchBucket" or (code in _NOT_FOUND and operation == "head_bucket"):
            return RepositoryError(f"S3 bucket {self.bucket!r} does not exist ({url})")
        if code in _NOT_FOUND:
            return ObjectNotFound(f"{url} does not exist")
        if code in _DENIED:
            return RepositoryError(f"access denied to {url} ({operation}): check the bucket policy")
        message = " ".join(str(exc.response.get("Error", {}).get("Message") or code).split())
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        hint = _HINTS.get(code) or (_THROTTLE_HINT if status == 429 else "")
        tail = f" ({hint})" if hint else ""
        return RepositoryError(f"S3 {operation} on {url} failed: {code}: {message}{tail}")

    def _pages(self, operation: str, markers: dict[str, str], **params: Any) -> Iterator[Any]:
        """Yield every page of a listing; ``markers`` maps request field <- response field."""
        while True:
            page = self._call(operation, **params)
            yield page
            if not page.get("IsTruncated"):
                return
            params.update({field: page[source] for field, source in markers.items()})

    def open_write(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        """Return an S3ObjectWriter for ``key`` (parts sized for ``size_hint`` bytes, see
        ``parts``). Raises RepositoryError for an unsafe key."""
        return S3ObjectWriter(self, self._full_key(key), size_hint)

    def iter_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield the object's bytes, in order. With ``download_concurrency`` 1, one GET
        streams it all. Otherwise the first GET asks for the first ``range_size`` bytes
        (all of a small object); as soon as its answer gives the object's size, more
        connections fetch the ranges after it, ``download_concurrency`` in all, each
        range retried on its own and pinned to the object's ETag. A connection lost
        mid-range resumes where it broke off. Raises ObjectNotFound / RepositoryError."""
        full = self._full_key(key)
        url = self._object_url(full)
        if self.download_concurrency <= 1:
            yield from self._stream(full, url, chunk_size)
            return
        rest: OrderedRanges | None = None

        def fetch_rest(size: int, etag: str) -> None:
            nonlocal rest
            if size > self.range_size:
                fetch = partial(self._read_range, full, url, etag)
                concurrency = self.download_concurrency
                rest = OrderedRanges(fetch, size, self.range_size, concurrency, self.range_size)
                rest.begin(concurrency - 1)  # the head's connection joins when it is read

        try:
            yield from self._stream(full, url, chunk_size, self.range_size, fetch_rest)
            if rest is not None:
                yield from rest
        finally:
            if rest is not None:
                rest.close()

    def iter_read_from(self, key: str, offset: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The object from ``offset`` on, over one connection (a ranged GET, resumed where
        it breaks like any read): where a read from another repository broke off."""
        if offset <= 0:
            yield from self.iter_read(key, chunk_size)
            return
        full = self._full_key(key)
        yield from self._stream(full, self._object_url(full), chunk_size, start=offset)

    def _read_range(self, full: str, url: str, etag: str, begin: int, end: int) -> bytes:
        """Bytes ``[begin, end)`` of the object, if it still has ``etag``; retried."""

        def fetch() -> bytes:
            got = self.client.get_object(
                Bucket=self.bucket, Key=full, Range=f"bytes={begin}-{end - 1}", IfMatch=etag
            )
            with contextlib.closing(got["Body"]) as body:
                data = body.read()
            if len(data) != end - begin:  # a cut stream: retried like any other
                raise IncompleteReadError(actual_bytes=len(data), expected_bytes=end - begin)
            return bytes(data)

        try:
            return retrying(
                _is_transient_read, RETRY_EVENT, self.retry, operation="get_object", url=url
            )(fetch)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "get_object", url) from exc

    def _stream(
        self,
        full: str,
        url: str,
        chunk_size: int,
        limit: int | None = None,
        on_size: Callable[[int, str], None] | None = None,
        start: int = 0,
    ) -> Iterator[bytes]:
        """Yield the object's bytes over one connection: all of them (from ``start``), or
        (``limit``) a ranged GET of the first ``limit``. ``on_size(size, etag)`` is called
        once, when the first answer's headers are in."""
        body: Any = None
        etag, offset, size, end = "", start, -1, -1
        read_retry = retrying(
            _is_transient_read, RETRY_EVENT, self.retry, operation="get_object", url=url
        )
        try:
            while offset != end:
                chunk = b""
                for attempt in read_retry:
                    with attempt:
                        if body is None:
                            got = self._open_body(full, offset, etag, limit)
                            body, etag = got["Body"], got["ETag"]
                            if size < 0:
                                size = _object_size(got, offset)
                                end = size if limit is None else min(size, limit)
                                if on_size is not None:
                                    on_size(size, etag)
                        try:
                            chunk = body.read(min(chunk_size, end - offset))
                        except BaseException:
                            body.close()
                            body = None
                            raise
                if offset == end:
                    break
                if not chunk:
                    raise RepositoryError(f"{url} ended after {offset} of {size} bytes")
                offset += len(chunk)
                yield chunk
        except ClientError as exc:
            if _code(exc) == "InvalidRange" and size < 0:
                return  # byte 0 of an object is unsatisfiable only when it is empty
            raise self._error(exc, "get_object", url) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "get_object", url) from exc
        finally:
            if body is not None:
                body.close()  # the rest of an object not read to its end is dropped

    def _open_body(self, full: str, offset: int, etag: str, limit: int | None) -> Any:
        """GET the object from ``offset`` (to ``limit``), pinned to ``etag`` once known."""
        params: dict[str, Any] = {"IfMatch": etag} if etag else {}
        if limit is not None:
            params["Range"] = f"bytes={offset}-{limit - 1}"
        elif offset:
            params["Range"] = f"bytes={offset}-"
        return self.client.get_object(Bucket=self.bucket, Key=full, **params)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` in one PUT (atomic). Raises RepositoryError."""
        self._call("put_object", Key=self._full_key(key), Body=data, **self.put_options)

    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes. Raises ObjectNotFound / RepositoryError."""
        return b"".join(self.iter_read(key))

    def exists(self, key: str) -> bool:
        """True if ``key`` is committed. Raises RepositoryError (e.g. a missing bucket)."""
        try:
            self._call("head_object", Key=self._full_key(key))
        except ObjectNotFound:
            self._call("head_bucket")  # HEAD says a bare 404 for a missing bucket too
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield committed objects under ``prefix``, sorted by key (without the repository
        prefix). Raises RepositoryError."""
        base = f"{self.prefix}/" if self.prefix else ""
        found = [
            ObjectInfo(obj["Key"][len(base) :], obj["Size"])
            for page in self._pages("list_objects_v2", _NEXT_OBJECTS, Prefix=base + prefix)
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")  # "folder" markers made by S3 consoles
        ]
        yield from sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        """Remove ``key`` (a missing key is fine). Raises RepositoryError."""
        self._call("delete_object", Key=self._full_key(key))

    #: seconds a host's lock lasts without a heartbeat (its holder died or lost the network)
    lock_lease: float = DEFAULT_LEASE

    @contextmanager
    def lock(self, policy: str, purpose: str, lane: str = "") -> Iterator[None]:
        """Hold ``policy``'s lease lock in the bucket (see ``lease``). The first use probes
        that the store honours conditional writes: one that ignores them cannot lock, and
        is refused with the reason, unless ``cross_host_lock: false`` says one host writes.
        Raises LockHeldError / RepositoryError."""
        if not self.cross_host_lock:
            yield
            return
        self._check_conditional_writes()
        key = self._full_key(keys.join(policy, f"lock-{lane}.json" if lane else "lock.json"))
        lease = LeaseLock(
            _RetryingLeaseClient(self),
            self.bucket,
            key,
            purpose,
            self.lock_lease,
            put_options=self.sse_options,
        )
        with held(lease):
            yield

    def _check_conditional_writes(self) -> None:
        if self._conditional_writes is None:
            probe = self._full_key(f"lock-probe-{uuid.uuid4().hex}")
            client = _RetryingLeaseClient(self)
            self._conditional_writes = honours_conditional_writes(
                client, self.bucket, probe, self.sse_options
            )
        if not self._conditional_writes:
            raise RepositoryError(
                f"{self.url} does not honour conditional writes (PutObject If-None-Match: *): "
                "its lock would not stop two hosts from writing the same policy at once. Use "
                "a store that does (AWS S3, MinIO, Ceph RGW >= 19), or set the repository's "
                "cross_host_lock: false if only this host ever writes to it"
            )

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` and abort its unfinished multipart uploads
        (left by a killed writer); return how many of both went. Raises RepositoryError."""
        raw = self._full_key(prefix.rstrip("/")) + "/"
        keys = [
            obj["Key"]
            for page in self._pages("list_objects_v2", _NEXT_OBJECTS, Prefix=raw)
            for obj in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):  # delete_objects takes at most 1000 keys
            batch = {"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True}
            if errors := self._call("delete_objects", at=raw, Delete=batch).get("Errors"):
                raise RepositoryError(
                    f"cannot delete {len(errors)} objects under {self._object_url(raw)}, e.g. "
                    f"{errors[0]['Key']}: {errors[0].get('Code')}"
                )
        return len(keys) + self.abort_incomplete(prefix)

    def abort_incomplete(self, prefix: str) -> int:
        """Abort the unfinished multipart uploads under ``prefix``; return how many."""
        raw = self._full_key(prefix.rstrip("/")) + "/"
        uploads = [
            upload
            for page in self._pages("list_multipart_uploads", _NEXT_UPLOADS, Prefix=raw)
            for upload in page.get("Uploads", [])
        ]
        for upload in uploads:
            self._abort_upload(upload["Key"], upload["UploadId"])
        return len(uploads)

    def _abort_upload(self, full_key: str, upload_id: str) -> None:
        """Abort one multipart upload; one already gone is fine. Raises RepositoryError."""
        gone = frozenset({"NoSuchUpload"})
        self._call("abort_multipart_upload", ignore=gone, Key=full_key, UploadId=upload_id)
