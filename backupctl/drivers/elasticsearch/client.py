"""The Elasticsearch connection: client construction, error translation, retries.

Every call to the cluster goes through :func:`call`, which retries transient failures
with logged backoff and turns whatever the cluster said into a BackupctlError whose
message quotes Elasticsearch's error type and reason.

A call that may be repeated (a read, or a write that ends in the same state however often
it runs: close, open, refresh) is retried after connection errors, timeouts and
429/502/503/504. One that may not (``safe=False``: create a snapshot, restore one) is
retried only after answers that prove it was not done (429, 503, a concurrent-snapshot
rejection); when its answer is lost it raises :class:`AnswerLost`, and the caller looks at
the cluster before deciding to send it again.

Index names never go into a URL unbounded: Elasticsearch refuses a request line over
4 KB (``http.max_initial_line_length``), so lists of names are sent in :func:`chunks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

from elasticsearch import ApiError, ConnectionTimeout, Elasticsearch, TransportError
from elasticsearch import ConnectionError as EsConnectionError

from backupctl.errors import BackupctlError
from backupctl.policy.elasticsearch import ElasticsearchConnection
from backupctl.policy.types import resolve_secret
from backupctl.retry import DEFAULT_POLICY, RetryPolicy, retrying

T = TypeVar("T")

TRANSIENT_STATUS = {429, 502, 503, 504}
#: statuses that prove the request was not carried out (rejected before any work)
REJECTED_STATUS = {429, 503}
#: bytes of index names per request line: Elasticsearch refuses lines over 4,096 bytes, and
#: the method, the rest of the path, the query string and the protocol need their share
URL_NAMES_BUDGET = 3000
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


class AnswerLost(ElasticsearchError):
    """A request that must not simply be sent again got no answer (connection lost, timed
    out, a gateway error): it may or may not have been carried out."""


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
    """Worth sending again, for a call that may be repeated."""
    if isinstance(exc, EsConnectionError | ConnectionTimeout):
        return True
    if isinstance(exc, ApiError):
        return exc.meta.status in TRANSIENT_STATUS or error_type(exc) in TRANSIENT_TYPES
    return False


def is_rejected(exc: BaseException) -> bool:
    """Refused before any work was done: safe to send again whatever the call."""
    if isinstance(exc, ApiError):
        return exc.meta.status in REJECTED_STATUS or error_type(exc) in TRANSIENT_TYPES
    return False


def call(
    what: str,
    fn: Callable[..., T],
    *args: Any,
    retry: RetryPolicy = DEFAULT_POLICY,
    safe: bool = True,
    **kw: Any,
) -> T:
    """Run one client call; retry what may be retried (see the module docstring); raise
    ElasticsearchError otherwise, AnswerLost for an unsafe call whose answer was lost."""
    retry_when = is_transient if safe else is_rejected
    try:
        return retrying(retry_when, "elasticsearch.retry", retry, operation=what)(fn, *args, **kw)
    except ApiError as exc:
        message = f"{what}: Elasticsearch said {exc.meta.status} {_reason(exc)}"
        if not safe and is_transient(exc):
            raise AnswerLost(message, error_type(exc), exc.meta.status) from exc
        raise ElasticsearchError(message, error_type(exc), exc.meta.status) from exc
    except TransportError as exc:
        where = _where(fn)
        if not safe:
            raise AnswerLost(f"{what}: no answer from Elasticsearch{where}: {exc}") from exc
        raise ElasticsearchError(f"{what}: cannot reach Elasticsearch{where}: {exc}") from exc


def _where(fn: Callable[..., Any]) -> str:
    """ " at URL" for the node(s) ``fn``'s client talks to ("" when it cannot be told)."""
    owner = getattr(fn, "__self__", None)
    client = getattr(owner, "_client", owner)
    try:
        urls = [str(node.base_url) for node in client.transport.node_pool.all()]  # type: ignore[union-attr]
    except AttributeError:
        return ""
    return f" at {', '.join(urls)}" if urls else ""


def chunks(names: list[str], budget: int = URL_NAMES_BUDGET) -> Iterator[list[str]]:
    """``names`` in groups whose comma-joined, URL-encoded form fits ``budget`` bytes."""
    group: list[str] = []
    size = 0
    for name in names:
        length = len(quote(name, safe="")) + 3  # the comma, encoded as %2C
        if group and size + length > budget:
            yield group
            group, size = [], 0
        group.append(name)
        size += length
    if group:
        yield group


def body(response: Any) -> Any:
    """The JSON body of a client response (ObjectApiResponse or a plain value)."""
    return getattr(response, "body", response)
