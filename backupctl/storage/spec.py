"""How a policy names a repository: a URL string or a mapping with options."""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backupctl.storage.encryption import EncryptionSpec

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._/-]*$")
SCHEMES = ("file", "s3")


class RepositorySpec(BaseModel):
    """A repository location plus backend options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="file:///absolute/path or s3://bucket/prefix")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Ceph)")
    region: str | None = None
    storage_class: str | None = None
    part_size_mb: int = Field(
        16, ge=5, le=512, description="the smallest S3 multipart part in MiB (parts grow past it)"
    )
    upload_concurrency: int = Field(
        4, ge=1, le=64, description="S3 parts uploaded at once (memory: one part each, plus one)"
    )
    download_concurrency: int = Field(
        4, ge=1, le=64, description="S3 ranges of 16 MiB read at once (memory: one range each)"
    )
    checksums: Literal["when_required", "when_supported"] = Field(
        "when_required",
        description="S3 request checksums (botocore's request_checksum_calculation, and "
        "response_checksum_validation likewise): when_required sends them only where S3 "
        "demands one, as every S3-compatible store accepts; when_supported adds a CRC32 to "
        "every part and a whole-object checksum (AWS S3, recent MinIO). The manifest's "
        "sha256 checks every object end to end either way",
    )
    cross_host_lock: bool = Field(
        True,
        description="S3: hold a lease lock in the bucket, so hosts sharing the repository "
        "never write one policy at once (needs a store that honours conditional writes; "
        "false: only this host writes)",
    )
    sse: Literal["AES256", "aws:kms"] | None = Field(
        None, description="S3 server-side encryption of every object (SSE-S3 or SSE-KMS)"
    )
    sse_kms_key_id: str | None = Field(
        None, description="KMS key for sse: aws:kms (default: the bucket's AWS-managed key)"
    )
    encryption: EncryptionSpec | None = Field(
        None,
        description="client-side encryption (AES-256-GCM) of every object written; "
        "restore and verify then need the same key",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"url": value}
        return value

    @model_validator(mode="after")
    def _check_url(self) -> RepositorySpec:
        parsed = urlparse(self.url)
        if parsed.scheme not in SCHEMES:
            raise ValueError(
                f"unsupported repository URL {self.url!r}: expected file:///path or s3://bucket/prefix"
            )
        if parsed.scheme == "file":
            if parsed.netloc or not parsed.path.startswith("/"):
                raise ValueError(
                    f"file repository URL must be absolute (file:///var/backups), got {self.url!r}"
                )
        else:
            if not _BUCKET_RE.match(parsed.netloc or ""):
                raise ValueError(f"invalid S3 bucket name in {self.url!r}")
            if ".." in parsed.path or not _PREFIX_RE.match(parsed.path):
                raise ValueError(f"invalid S3 prefix in {self.url!r}")
        if (self.sse or self.sse_kms_key_id) and parsed.scheme != "s3":
            raise ValueError("sse and sse_kms_key_id are S3 options; this is a file repository")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse: aws:kms")
        if self.endpoint_url is not None and urlparse(self.endpoint_url).scheme not in (
            "http",
            "https",
        ):
            raise ValueError(f"endpoint_url must be http(s)://…, got {self.endpoint_url!r}")
        return self

    @property
    def scheme(self) -> str:
        return urlparse(self.url).scheme

    @property
    def location(self) -> str:
        """The path (file) or bucket (s3)."""
        parsed = urlparse(self.url)
        return parsed.path if parsed.scheme == "file" else parsed.netloc

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket (s3), '' for file repositories."""
        parsed = urlparse(self.url)
        return parsed.path.strip("/") if parsed.scheme == "s3" else ""
