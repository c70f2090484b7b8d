"""pytest plugin: an Elasticsearch for tests, the in-process test double by default.

Load it with ``pytest_plugins = ["tests.support.elasticsearch"]`` (loading it twice is
harmless). Tests that use these fixtures get the ``elasticsearch`` marker.

By default every test gets a fresh :class:`~tests.fakes.elasticsearch.FakeElasticsearch`
(Elasticsearch 8.15.3 over real HTTP on ``127.0.0.1`` and a free port, single node, fs
repositories allowed under ``snapshot_root`` as with ``path.repo``). With
``BACKUPCTL_TEST_ES_URL`` set (e.g. ``http://127.0.0.1:9200`` from
docker-compose.test.yml) ``es_cluster`` uses that cluster instead, its fs repositories
under ``BACKUPCTL_TEST_ES_SNAPSHOT_DIR`` (default ``/var/backups/es``, the cluster's
``path.repo``, a path as the *server* sees it); tests then name what they create with
``es_cluster.name(...)`` so teardown can remove it (indices, repositories and their
snapshots named ``<prefix>-*``). Tests that need the double's side channel call
``es_cluster.require_fake(reason)``, which skips them against a real cluster.

Fixtures
--------
``es_cluster`` (function) -> :class:`EsCluster`:

- ``url``: base URL; ``real``: True against ``BACKUPCTL_TEST_ES_URL``.
- ``client(**kwargs)``: an ``elasticsearch.Elasticsearch`` for test setup (closed at
  teardown); ``client_kwargs``: what it is built with (TLS and credentials), to hand to
  the code under test.
- ``fake``: the double's :class:`~tests.fakes.elasticsearch.FakeControls` (``None``
  against a real cluster): ``snapshot_duration`` and ``recovery_delay`` (seconds,
  default 0.05), ``finish_snapshots()`` / ``finish_recoveries()`` (end them now),
  ``fail_next_snapshots(state="PARTIAL"|"FAILED", count=1, indices=None, shards=None,
  reason=None)``, ``fail_requests(method, path, status=503,
  error_type="concurrent_snapshot_execution_exception", reason=..., times=1)``,
  ``deny_repository_writes(location)`` / ``allow_repository_writes(location)``,
  ``drop_answer(method, path_regex, times=1)`` (process the request in full, then close
  the connection without an answer) / ``delay_answer(method, path_regex, seconds,
  times=1)`` (answer ``seconds`` late), ``add_system_index(feature, index, docs=(),
  description=None)`` (a system index of a feature, which real clients cannot create),
  ``requests`` / ``calls(method=None, path=None)`` (``RecordedRequest``: ``method``,
  ``path``, ``query``, ``body``, ``status``, ``user``, ``headers``, ``answer``: sent,
  dropped or delayed) / ``clear_requests()``.
- ``server``: the :class:`~tests.fakes.elasticsearch.FakeElasticsearch` (or ``None``).
- ``require_fake(reason) -> FakeControls``: skip against a real cluster.
- ``snapshot_root``: a directory fs repositories may use; ``repo_location(base)``: a
  fresh location under it (a string, as repository settings want it).
- ``prefix`` and ``name(base)``: unique, lowercase names (``<prefix>-<base>``); teardown
  on a real cluster also removes data streams and index templates so named.
- ``restart()``: (the double only) stop it and start a new one on the same port and
  snapshot root: indices and registered repositories are gone, repository contents
  are not.

``es_secure_factory`` (function) -> ``make(*, tls=True, client_auth=False, users=None,
api_keys=None, **fake_kwargs) -> EsCluster``: always a double (the compose cluster runs
without security), serving HTTPS with a throwaway CA when ``tls``, requiring client
certificates when ``client_auth``, requiring credentials when ``users`` (name ->
password) or ``api_keys`` (id -> secret) are given. The returned cluster's
``client_kwargs`` trust the CA (``ca_certs``), present the client certificate under
mutual TLS (``client_cert``/``client_key``) and authenticate with the first user
(``basic_auth``) or else the first API key (``api_key`` as an ``(id, secret)`` tuple);
``tls`` holds the :class:`~tests.fakes.elasticsearch.TlsMaterial` paths.

``es_tls_cluster`` (function) -> :class:`EsCluster`: ``es_secure_factory(tls=True,
client_auth=True, api_keys={"backupctl": <random secret>})``, ready made: HTTPS,
mutual TLS and an API key, all in ``client_kwargs``.

``es_tls_material`` (session) -> :class:`~tests.fakes.elasticsearch.TlsMaterial`:
``ca_cert``, ``server_cert``/``server_key``, ``client_cert``/``client_key`` (PEM files).

Behaviour worth knowing: the official client retries 502/503/504 up to 3 times, so an
injected 503 needs ``times`` > 3 or a client built with ``max_retries=0``; cluster
health answers HTTP 408 when it times out (use ``client.options(ignore_status=408)``);
documents become visible to ``_count`` on refresh, as in Elasticsearch. A request the
double itself fails on (a bug in it, answered 500 ``test_double_exception``) fails the
test at teardown. ``require_fake(cluster, reason)`` is also importable as a function.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import ApiError, Elasticsearch, TransportError

from tests.fakes.elasticsearch import (
    FakeControls,
    FakeElasticsearch,
    TlsConfig,
    TlsMaterial,
    make_tls_material,
)

URL_ENV = "BACKUPCTL_TEST_ES_URL"
SNAPSHOT_DIR_ENV = "BACKUPCTL_TEST_ES_SNAPSHOT_DIR"
DEFAULT_SNAPSHOT_DIR = "/var/backups/es"
_FIXTURES = {"es_cluster", "es_secure_factory", "es_tls_cluster"}


@dataclass
class EsCluster:
    """An Elasticsearch for one test: the double (``server``) or a real cluster."""

    url: str
    snapshot_root: Path
    prefix: str
    server: FakeElasticsearch | None = None
    tls: TlsMaterial | None = None
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    _clients: list[Elasticsearch] = field(default_factory=list, repr=False)
    _fake_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def real(self) -> bool:
        return self.server is None

    @property
    def fake(self) -> FakeControls | None:
        return self.server.controls if self.server is not None else None

    def client(self, **kwargs: Any) -> Elasticsearch:
        es = Elasticsearch(self.url, **{**self.client_kwargs, **kwargs})
        self._clients.append(es)
        return es

    def require_fake(self, reason: str) -> FakeControls:
        if self.server is None:
            pytest.skip(f"needs the Elasticsearch test double ({reason}); {URL_ENV} is set")
        return self.server.controls

    def name(self, base: str = "idx") -> str:
        return f"{self.prefix}-{base}"

    def repo_location(self, base: str = "repo") -> str:
        return str(self.snapshot_root / self.name(base))

    def restart(self) -> None:
        """Stop the double and start a new one on the same port and snapshot root."""
        if self.server is None:
            pytest.skip("restarting needs the Elasticsearch test double")
        port = self.server.port
        self.server.stop()
        self.server = FakeElasticsearch(port=port, **self._fake_kwargs).start()
        self.url = self.server.url

    def close(self) -> None:
        for es in self._clients:
            es.close()
        self._clients.clear()
        if self.server is not None:
            self.server.stop()


def require_fake(cluster: EsCluster, reason: str) -> FakeControls:
    """Module-level spelling of :meth:`EsCluster.require_fake`."""
    return cluster.require_fake(reason)


def _new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def start_fake(snapshot_root: Path, **kwargs: Any) -> EsCluster:
    """A started double whose fs repositories may live under ``snapshot_root``."""
    snapshot_root.mkdir(parents=True, exist_ok=True)
    fake_kwargs = {"path_repo": [snapshot_root], **kwargs}
    server = FakeElasticsearch(**fake_kwargs).start()
    return EsCluster(
        server.url, snapshot_root, _new_prefix(), server=server, _fake_kwargs=fake_kwargs
    )


def _cleanup_real(cluster: EsCluster) -> None:
    """Best effort: remove what a test named ``<prefix>-*`` on a shared cluster."""
    es = Elasticsearch(cluster.url, **cluster.client_kwargs)
    pattern = cluster.name("*")
    try:
        streams = es.indices.get_data_stream(name=pattern, expand_wildcards="all")
        for stream in streams["data_streams"]:
            es.indices.delete_data_stream(name=stream["name"], expand_wildcards="all")
        templates = es.options(ignore_status=404).indices.get_index_template(name=pattern)
        for template in templates.body.get("index_templates", []):
            es.indices.delete_index_template(name=template["name"])
        for index in es.indices.get(index=pattern, expand_wildcards="all"):
            es.indices.delete(index=index, ignore_unavailable=True)
        for repo in es.snapshot.get_repository(name=pattern):
            snapshots = es.snapshot.get(repository=repo, snapshot="*")["snapshots"]
            if snapshots:
                names = ",".join(s["snapshot"] for s in snapshots)
                es.snapshot.delete(repository=repo, snapshot=names)
            es.snapshot.delete_repository(name=repo)
    except (ApiError, TransportError):
        pass
    finally:
        es.close()


@pytest.fixture
def es_cluster(tmp_path: Path) -> Iterator[EsCluster]:
    """A fresh test double, or the cluster at ``BACKUPCTL_TEST_ES_URL``."""
    external = os.environ.get(URL_ENV)
    if external:
        root = Path(os.environ.get(SNAPSHOT_DIR_ENV, DEFAULT_SNAPSHOT_DIR))
        cluster = EsCluster(external.rstrip("/"), root, _new_prefix())
        try:
            yield cluster
        finally:
            cluster.close()
            _cleanup_real(cluster)
        return
    cluster = start_fake(tmp_path / "es-snapshots")
    try:
        yield cluster
    finally:
        cluster.close()
    _fail_on_bugs(cluster)


def _fail_on_bugs(cluster: EsCluster) -> None:
    """A request the double itself failed on (a bug in it) fails the test."""
    if cluster.server is not None and cluster.server.bugs:
        pytest.fail(
            "the Elasticsearch test double failed internally:\n" + cluster.server.bugs[0],
            pytrace=False,
        )


@pytest.fixture(scope="session")
def es_tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A throwaway CA with a server (localhost, 127.0.0.1) and a client certificate."""
    return make_tls_material(tmp_path_factory.mktemp("es-tls"))


@pytest.fixture
def es_secure_factory(
    tmp_path: Path, es_tls_material: TlsMaterial
) -> Iterator[Callable[..., EsCluster]]:
    """``make(tls=True, client_auth=False, users=None, api_keys=None, **kwargs)``."""
    made: list[EsCluster] = []

    def make(
        *,
        tls: bool = True,
        client_auth: bool = False,
        users: dict[str, str] | None = None,
        api_keys: dict[str, str] | None = None,
        **fake_kwargs: Any,
    ) -> EsCluster:
        material = es_tls_material
        config = None
        if tls:
            config = TlsConfig(
                material.server_cert,
                material.server_key,
                material.ca_cert if client_auth else None,
            )
        root = tmp_path / f"es-snapshots-{len(made)}"
        cluster = start_fake(root, tls=config, users=users, api_keys=api_keys, **fake_kwargs)
        cluster.tls = material if tls else None
        cluster.client_kwargs = _secure_client_kwargs(material, tls, client_auth, users, api_keys)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()
    for cluster in made:
        _fail_on_bugs(cluster)


@pytest.fixture
def es_tls_cluster(es_secure_factory: Callable[..., EsCluster]) -> EsCluster:
    """HTTPS with mutual TLS and an API key (``client_kwargs`` carry all three)."""
    return es_secure_factory(
        tls=True, client_auth=True, api_keys={"backupctl": secrets.token_urlsafe(16)}
    )


def _secure_client_kwargs(
    material: TlsMaterial,
    tls: bool,
    client_auth: bool,
    users: dict[str, str] | None,
    api_keys: dict[str, str] | None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if tls:
        kwargs["ca_certs"] = str(material.ca_cert)
    if client_auth:
        kwargs["client_cert"] = str(material.client_cert)
        kwargs["client_key"] = str(material.client_key)
    if users:
        kwargs["basic_auth"] = next(iter(users.items()))
    elif api_keys:
        kwargs["api_key"] = next(iter(api_keys.items()))
    return kwargs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"elasticsearch: uses an Elasticsearch (the in-process test double, or {URL_ENV})",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.elasticsearch)
