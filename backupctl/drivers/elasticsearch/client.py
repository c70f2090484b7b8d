"""The Elasticsearch connection: client construction, error translation, retries.

Every call to the cluster goes through :func:`call`, which retries transient failures
(connection errors, 429/502/503/504, ``concurrent_snapshot_execution_exception``)
with logged backoff and turns whatever the cluster said into a BackupctlError whose
message quotes Elasticsearch's error type and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from backupctl.errors import BackupctlError
from backupctl.policy.elasticsearch import ElasticsearchConnection
from backupctl.policy.types import resolve_secret
from backupctl.retry import DEFAULT_POLICY, RetryPolicy, retrying

T = TypeVar("T")

TRANSIENT_STATUS = {429, 502, 503, 504}
TRANSIENT_TYPES = {
    "concurrent_snapshot_execution_exception",
    "process_cluster_event_timeout_exception",
    "circuit_breaking_exception",
}


class ElasticsearchError(BackupctlError):
    """The cluster refused or failed a request; ``error_type`` is Elasticsearch's."""

    def __init__(self, message: str, error_type: str | None = None, status: int | None = None):
        super().__init__(message)
        self.error_type, self.status = error_type, status


def make_client(conn: ElasticsearchConnection) -> Elasticsearch:
    """Build the client from the policy's connection block (secrets resolved here)."""
    kwargs: dict[str, Any] = {
        "request_timeout": conn.timeout.total_seconds(),
        "max_retries": 0,  # retries happen in call(), logged, for transient errors only
    }
    api_key = resolve_secret(conn.api_key, conn.api_key_file, conn.api_key_env)
    if api_key:
        # "id:secret" as created, or the base64 "encoded" form Elasticsearch also prints
        key_id, sep, secret = api_key.partition(":")
        kwargs["api_key"] = (key_id, secret) if sep else api_key
    elif conn.username:
        kwargs["basic_auth"] = (conn.username, conn.resolve_password() or "")
    if conn.ca_certs is not None:
        kwargs["ca_certs"] = str(conn.ca_certs)
    if conn.client_cert is not None and conn.client_key is not None:
        kwargs["client_cert"], kwargs["client_key"] = str(conn.client_cert), str(conn.client_key)
    return Elasticsearch(str(conn.url), **kwargs)


def error_type(exc: ApiError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return error.get("type") if isinstance(error, dict) else None


def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        causes = error.get("root_cause") or []
        cause = causes[0] if causes and isinstance(causes[0], dict) else error
        return f"{cause.get('type', error.get('type'))}: {cause.get('reason', error.get('reason'))}"
    return str(error or exc.message)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, EsConnectionError):
        return True
    if isinstance(exc, ApiError):
        return exc.meta.status in TRANSIENT_STATUS or error_type(exc) in TRANSIENT_TYPES
    return False


def call(
    what: str, fn: Callable[..., T], *args: Any, retry: RetryPolicy = DEFAULT_POLICY, **kw: Any
) -> T:
    """Run one client call; retry transient failures; raise ElasticsearchError otherwise."""
    try:
        return retrying(is_transient, "elasticsearch.retry", retry, operation=what)(fn, *args, **kw)
    except ApiError as exc:
        raise ElasticsearchError(
            f"{what}: Elasticsearch said {exc.meta.status} {_reason(exc)}",
            error_type(exc),
            exc.meta.status,
        ) from exc
    except TransportError as exc:
        raise ElasticsearchError(f"{what}: cannot reach Elasticsearch: {exc}") from exc


def body(response: Any) -> Any:
    """The JSON body of a client response (ObjectApiResponse or a plain value)."""
    return getattr(response, "body", response)
