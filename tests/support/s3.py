"""pytest plugin: a real S3 endpoint over HTTP for integration tests.

Load it with ``pytest_plugins = ["tests.support.s3"]`` (loading it twice is harmless:
pytest registers a plugin module once).

- ``s3_endpoint`` (session): the endpoint URL. By default a ``moto.server`` subprocess on
  a free loopback port, with fake AWS credentials in the environment for the session.
  When ``BACKUPCTL_TEST_S3_ENDPOINT`` is set (e.g. MinIO from docker-compose.test.yml),
  that endpoint is used instead and credentials come from the environment.
- ``s3_client`` (session): a plain boto3 client on that endpoint, for looking behind
  the repository's back (head_object, list_multipart_uploads, …).
- ``s3_bucket`` (function): a fresh, uniquely named, empty bucket; emptied and removed
  afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.motoserver import FAKE_CREDENTIALS, REAL_AWS_SETTINGS, moto_server

ENDPOINT_ENV = "BACKUPCTL_TEST_S3_ENDPOINT"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield the URL of an S3 endpoint speaking real HTTP."""
    external = os.environ.get(ENDPOINT_ENV)
    if external:
        yield external.rstrip("/")
        return
    with pytest.MonkeyPatch.context() as env:
        for name in REAL_AWS_SETTINGS:
            env.delenv(name, raising=False)
        for name, value in FAKE_CREDENTIALS.items():
            env.setenv(name, value)
        # no shared config/credentials file from the developer's home directory
        empty = tmp_path_factory.mktemp("aws-config")
        env.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        with ExitStack() as server:
            log = tmp_path_factory.mktemp("moto") / "server.log"
            try:
                _, url = server.enter_context(moto_server(log))
            except RuntimeError as exc:
                pytest.fail(str(exc), pytrace=False)
            yield url


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 S3 client on ``s3_endpoint`` (credentials from the environment)."""
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """Create a fresh, uniquely named bucket and return its name; remove it afterwards."""
    name = f"backupctl-test-{uuid.uuid4().hex[:16]}"
    region = s3_client.meta.region_name
    if region and region != "us-east-1":
        s3_client.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}
        )
    else:
        s3_client.create_bucket(Bucket=name)
    yield name
    _remove_bucket(s3_client, name)


def _remove_bucket(client: Any, name: str) -> None:
    """Best-effort cleanup, so a shared MinIO does not fill up with test buckets."""
    try:
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)
    except (BotoCoreError, ClientError):
        pass
