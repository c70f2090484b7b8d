"""A protocol-faithful Elasticsearch 8 test double for backupctl's tests.

:class:`FakeElasticsearch` serves, over real HTTP(S) on a loopback port in this process,
the REST endpoints backupctl's Elasticsearch driver uses, with Elasticsearch's paths,
query parameters, bodies, status codes and error shapes, and the ``X-Elastic-Product``
header and ``compatible-with`` media types the official client insists on.
``controls`` (:class:`FakeControls`) is the side channel: fault injection, timing and a
request log. Use it through the pytest plugin ``tests.support.elasticsearch``.

Modules: ``server`` (sockets, TLS), ``app`` (negotiation, auth, dispatch, rendering),
``routing`` (route table, parameter checks), ``api_*`` (endpoint handlers), ``cluster``
(indices, documents, aliases, health), ``snapshots``/``restore``/``repository``
(snapshot repositories), ``faults`` (the side channel), ``errors`` (ES-shaped errors).

Endpoints: ``GET|HEAD /``; ``PUT|GET|HEAD|DELETE /{index}``, ``POST /{index}/_close``,
``_open``, ``GET|POST [/{index}]/_refresh``, ``GET|PUT /{index}/_settings``,
``GET [/{index}]/_mapping``; ``PUT|POST /{index}/_doc/{id}``, ``POST /{index}/_doc``,
``PUT|POST /{index}/_create/{id}``, ``GET|HEAD|DELETE /{index}/_doc/{id}``,
``POST|PUT [/{index}]/_bulk``, ``GET|POST [/{index}]/_count``; ``POST /_aliases``,
``GET /_alias[/{name}]``, ``GET /{index}/_alias[/{name}]``, ``HEAD`` of those,
``PUT|DELETE /{index}/_alias/{name}``; ``GET /_cluster/health[/{index}]``,
``GET|PUT /_cluster/settings``, ``GET /_cat/indices[/{index}]``, ``GET [/{index}]/_stats``;
``GET /_snapshot[/{repo}]``, ``PUT|POST|DELETE /_snapshot/{repo}``,
``POST /_snapshot/{repo}/_verify``, ``PUT|POST|GET|DELETE /_snapshot/{repo}/{snapshot}``,
``GET /_snapshot[/{repo}[/{snapshot}]]/_status``,
``POST /_snapshot/{repo}/{snapshot}/_restore``. Anything else answers 400 ``no handler
found for uri`` (or 405 for a known path with another method), as Elasticsearch does.

Known differences from Elasticsearch (8.15):

- One node, one process, no real shards: health follows from ``number_of_replicas`` and
  ``data_nodes`` (default 1, so replicas stay unassigned and an index is yellow), and a
  restored index is red for ``controls.recovery_delay`` seconds. Document routing uses
  CRC32, not murmur3, so which shard a document lands in differs.
- ``_count`` understands only match_all/none, term(s), match, match_phrase, prefix,
  wildcard, range, exists, ids and bool, without analysis (lower-cased whitespace
  tokens); there is no ``_search``. Refresh is modelled (a write is counted after a
  refresh, ``?refresh``, or ``index.refresh_interval``), search-idle shards are not.
- Real parameters the double does not implement (``routing``, ``pipeline``, ``version``,
  ``if_seq_no``, ``_source_includes``, ``include_defaults``, ``after``, ...) are refused
  with a 400 naming them rather than ignored; unknown ones get Elasticsearch's
  ``unrecognized parameter`` error. ``filter_path`` and ``pretty`` work; ``human`` is
  accepted and ignored; ``_cat`` answers JSON or a plain text table only.
- Snapshots are kept in the double's own JSON layout under the repository location (not
  Elasticsearch's blob format); global state and feature states are recorded as flags
  only; snapshots are never incremental; ``_status`` file counts and sizes are
  approximate. ``s3``/``gcs``/``azure``/``url``/``source`` repositories are opaque and kept
  in memory. FAILED and PARTIAL snapshots happen only through fault injection (or a
  partial snapshot of a red index). A registered repository whose verification fails
  stays registered, as in Elasticsearch.
- Security is basic auth and API keys only (no roles or privileges: an authenticated
  user may do anything); compatible-with 7, 8 and 9 are all accepted.
"""

from .certs import TlsMaterial, make_tls_material
from .errors import EsError
from .faults import FakeControls, RecordedRequest
from .server import FakeElasticsearch, TlsConfig

__all__ = [
    "EsError",
    "FakeControls",
    "FakeElasticsearch",
    "RecordedRequest",
    "TlsConfig",
    "TlsMaterial",
    "make_tls_material",
]
