"""A lock shared by every host using one S3 repository: an object with an owner and a
lease, taken with a conditional write and kept alive by a heartbeat.

- take: ``PutObject If-None-Match: *`` creates ``<policy>/.lock`` only if it is absent;
- an expired lease (its holder died or lost the network) is taken over with
  ``If-Match: <the ETag we read>``, so of two hosts racing for it exactly one wins;
- the heartbeat rewrites it (``If-Match`` our own ETag) every third of the lease; if
  that fails the lock was lost, which is logged loudly;
- release deletes it if it is still ours.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from botocore.exceptions import ClientError

from backupctl.errors import LockHeldError, RepositoryError

log = structlog.get_logger()

DEFAULT_LEASE = 120.0


def _precondition_failed(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def honours_conditional_writes(
    client: Any, bucket: str, key: str, put_options: dict[str, Any] | None = None
) -> bool:
    """Write ``key`` (a fresh name) twice with ``If-None-Match: *``: a store that honours
    conditional writes refuses the second. One that ignores the condition (or does not
    implement it) would let two hosts hold the same lock. The probe is removed."""
    options = {"Bucket": bucket, "Key": key, "Body": b"probe", **(put_options or {})}
    try:
        client.put_object(IfNoneMatch="*", **options)
        try:
            client.put_object(IfNoneMatch="*", **options)
        except ClientError as exc:
            if _precondition_failed(exc):
                return True
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                return False
            raise RepositoryError(f"cannot probe s3://{bucket}/{key}: {exc}") from exc
        return False
    except ClientError as exc:
        raise RepositoryError(f"cannot probe s3://{bucket}/{key}: {exc}") from exc
    finally:
        client.delete_object(Bucket=bucket, Key=key)


class LeaseLock:
    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        purpose: str,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
        put_options: dict[str, Any] | None = None,
    ):
        self.client, self.bucket, self.key, self.purpose = client, bucket, key, purpose
        self.lease, self.clock = lease, clock
        self.put_options = put_options or {}  # e.g. server-side encryption
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        now = self.clock()
        holder = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "purpose": self.purpose,
            "renewed_at": now,
            "expires_at": now + self.lease,
        }
        return json.dumps(holder).encode()

    def _put(self, **condition: str) -> str | None:
        """Conditional write; the new ETag, or None when the condition failed."""
        try:
            reply = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=self._body(), **condition, **self.put_options
            )
        except ClientError as exc:
            if _precondition_failed(exc):
                return None
            raise RepositoryError(
                f"cannot write lock s3://{self.bucket}/{self.key}: {exc}"
            ) from exc
        return str(reply["ETag"])

    def _read(self) -> tuple[dict[str, Any], str] | None:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise RepositoryError(f"cannot read lock s3://{self.bucket}/{self.key}: {exc}") from exc
        try:
            holder = json.loads(reply["Body"].read())
        except ValueError:
            holder = {}
        return holder, str(reply["ETag"])

    def acquire(self) -> None:
        """Take the lock or raise LockHeldError naming the holder."""
        for _attempt in range(3):
            if (etag := self._put(IfNoneMatch="*")) is not None:
                return self._taken(etag)
            current = self._read()
            if current is None:
                continue  # released meanwhile: try again
            holder, etag_seen = current
            if holder.get("owner") == self.owner:  # our write landed but its answer was lost
                return self._taken(etag_seen)
            if float(holder.get("expires_at", 0)) > self.clock() and not _abandoned(holder):
                raise LockHeldError(
                    f"s3://{self.bucket}/{self.key} is held by {holder.get('owner')} "
                    f"({holder.get('purpose')}) until "
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(holder['expires_at']))}"
                )
            if (etag := self._put(IfMatch=etag_seen)) is not None:
                log.warning(
                    "took over an expired lock", lock=self.key, previous=holder.get("owner")
                )
                return self._taken(etag)
        raise LockHeldError(f"s3://{self.bucket}/{self.key}: another host took it first")

    def _taken(self, etag: str) -> None:
        self.etag = etag
        self._thread = threading.Thread(target=self._heartbeat, name="lease", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            assert self.etag is not None
            try:
                etag = self._put(IfMatch=self.etag)
            except RepositoryError as exc:
                log.warning("could not renew the lock; will retry", lock=self.key, error=str(exc))
                continue
            if etag is None and self._still_ours():
                continue  # our renewal landed but its answer was lost: _still_ours kept the ETag
            if etag is None:
                self.lost = True
                log.error("lock lost: another host took it over", lock=self.key)
                return
            self.etag = etag

    def _still_ours(self) -> bool:
        """After a refused renewal: True (and the current ETag kept) if the lock still
        names us, as when a renewal's answer was lost and its retry found a new ETag."""
        try:
            current = self._read()
        except RepositoryError:
            return False
        if current is None or current[0].get("owner") != self.owner:
            return False
        self.etag = current[1]
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost or self.etag is None:
            return
        current = self._read()
        if current is not None and current[0].get("owner") == self.owner:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)


@contextmanager
def held(lock: LeaseLock) -> Iterator[LeaseLock]:
    lock.acquire()
    try:
        yield lock
    finally:
        try:
            lock.release()
        except RepositoryError as exc:  # never hide the work's outcome: the lease expires
            log.warning(
                "could not release the lock; its lease expires", lock=lock.key, error=str(exc)
            )


def _abandoned(holder: dict[str, Any]) -> bool:
    """True when the holder ran on this host and its process is gone (killed, or it could
    not release the lock while the storage failed): no need to wait for its lease."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
