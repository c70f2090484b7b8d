"""An Elasticsearch that does not answer is named in the error: the operator sees which
URL to check, not only "connection refused"."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from backupctl.drivers.elasticsearch.client import call
from backupctl.errors import BackupctlError
from backupctl.retry import RetryPolicy
from tests.support.net import free_port

ONCE = RetryPolicy(attempts=1, initial=0, maximum=0, jitter=0)


def test_a_connection_error_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = Elasticsearch(url, request_timeout=2, max_retries=0)
    with pytest.raises(BackupctlError, match=f"cannot reach Elasticsearch at {url}"):
        call("cluster health", client.cluster.health, retry=ONCE)
    with pytest.raises(BackupctlError, match=f"no answer from Elasticsearch at {url}"):
        call(
            "create snapshot",
            client.snapshot.create,
            retry=ONCE,
            safe=False,
            repository="r",
            snapshot="s",
        )
