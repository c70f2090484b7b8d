"""A protocol-faithful Elasticsearch 8 test double for backupctl's tests.

:class:`FakeElasticsearch` serves, over real HTTP(S) on a loopback port in this process,
the REST endpoints backupctl's Elasticsearch driver uses, with Elasticsearch's paths,
query parameters, bodies, status codes and error shapes, and the ``X-Elastic-Product``
header and ``compatible-with`` media types the official client insists on.
``controls`` (:class:`FakeControls`) is the side channel: fault injection, timing and a
request log. Use it through the pytest plugin ``tests.support.elasticsearch``.

Modules: ``server`` (sockets, TLS, the request line limit, dropped and late answers),
``app`` (negotiation, auth, dispatch, rendering), ``routing`` (route table, parameter
checks), ``api_*`` (endpoint handlers; ``api_streams``: templates, data streams,
rollover, features), ``cluster`` (indices, documents, aliases, data streams, templates,
features, health), ``mappings`` (dynamic and ``nested`` mapping), ``snapshots``/
``restore``/``repository`` (snapshot repositories), ``faults`` (the side channel),
``errors`` (ES-shaped errors), ``spec_shapes`` (the response bodies, written from the
Elasticsearch specification, that ``tests/unit/test_fake_elasticsearch_spec.py`` checks).

Endpoints: ``GET|HEAD /``; ``PUT|GET|HEAD|DELETE /{index}``, ``POST /{index}/_close``,
``_open``, ``GET|POST [/{index}]/_refresh``, ``GET|PUT /{index}/_settings``,
``GET [/{index}]/_mapping``; ``PUT|POST /{index}/_doc/{id}``, ``POST /{index}/_doc``,
``PUT|POST /{index}/_create/{id}``, ``GET|HEAD|DELETE /{index}/_doc/{id}``,
``POST|PUT [/{index}]/_bulk``, ``GET|POST [/{index}]/_count``; ``POST /_aliases``,
``GET /_alias[/{name}]``, ``GET /{index}/_alias[/{name}]``, ``HEAD`` of those,
``PUT|DELETE /{index}/_alias/{name}``; ``PUT|GET|HEAD|DELETE /_index_template[/{name}]``,
``PUT|GET|DELETE /_data_stream[/{name}]``, ``POST /{target}/_rollover[/{new_index}]``,
``GET /_features``; ``GET /_cluster/health[/{index}]``, ``GET|PUT /_cluster/settings``,
``GET /_cat/indices[/{index}]``, ``GET [/{index}]/_stats``;
``GET /_snapshot[/{repo}]``, ``PUT|POST|DELETE /_snapshot/{repo}``,
``POST /_snapshot/{repo}/_verify``, ``PUT|POST|GET|DELETE /_snapshot/{repo}/{snapshot}``,
``GET /_snapshot[/{repo}[/{snapshot}]]/_status``,
``POST /_snapshot/{repo}/{snapshot}/_restore``. Anything else answers 400 ``no handler
found for uri`` (or 405 for a known path with another method), as Elasticsearch does.

Rules it enforces (Elasticsearch 8 behaviour, with its status codes, types and reasons):

- Request line: ``http.max_initial_line_length`` is 4 KB. A request line (method, URI
  with query string, protocol; CR LF not counted) over 4,096 bytes is answered, whatever
  the request, 400 ``too_long_http_line_exception`` "An HTTP line is larger than 4096
  bytes." over HTTP/1.0, and the connection is closed (Netty's decoder, then
  ``RestController.dispatchBadRequest``).
- Cluster health with ``wait_for_*``: when the wait is not met the answer is 408 with
  ``timed_out: true``, sent no sooner than ``timeout`` (plus 50 ms, so a client whose read
  timeout equals the wait reliably sees its own timeout).
- Allocation filtering: an index whose ``index.routing.allocation.require``/``include``/
  ``exclude`` rules leave no node for it (the one node has ``_name``, ``_host``, ``_ip``
  and no custom attributes) has unassigned primaries: red, writes wait, counts fail,
  snapshots refuse it ("Indices don't have primary shards").
- Snapshot names are not reusable: creating one whose name exists or is in progress is
  400 ``snapshot_name_already_in_use_exception`` (8.3+, a subclass of
  ``InvalidSnapshotNameException``) "[repo:name] Invalid snapshot name [name], snapshot
  with the same name already exists" / "... is already in-progress". Restoring onto an
  open index is 500 ``snapshot_restore_exception`` "[repo:name/uuid] cannot restore index
  [x] because an open index with same name already exists in the cluster. Either close or
  delete the existing index or restore the index under a different name by providing a
  rename pattern and replacement name".
- System indices and feature states: system indices (made with
  ``controls.add_system_index``, hidden) belong to a feature (``GET /_features``). A
  snapshot takes them only through feature states (every feature with
  ``include_global_state`` and no ``feature_states``; ``["none"]``: none; named features,
  unknown names ignored, "none" with others refused 400); naming one in ``indices`` is
  400 "the [indices] parameter includes system indices [...]; to include or exclude
  system indices from a snapshot, use the [include_global_state] or [feature_states]
  parameters"; wildcards leave them out. ``feature_states: [{feature_name, indices}]``
  is in the snapshot's info. Restore: naming one is 400 ``illegal_argument_exception``
  "requested system indices [...], but system indices can only be restored as part of a
  feature state" (wildcards skip them); ``feature_states`` (or ``include_global_state``)
  restores features, deleting their live system indices first, never renamed; an unknown
  feature is 500 ``snapshot_restore_exception`` "requested feature states [[x]] are not
  present in snapshot".
- Data streams: composable templates with ``data_stream: {}`` (``index_patterns``
  required; same-priority overlapping patterns refused); ``PUT /_data_stream/{name}``
  (or the first write to a matching name) makes hidden backing indices
  ``.ds-<name>-<yyyy.MM.dd>-<000001>``, the newest the write index. Writes need
  ``op_type=create`` (POST without id defaults to it; otherwise 400 "only write ops with
  an op_type of create are allowed in data streams") and one ``@timestamp`` (400
  ``document_parsing_exception``). Deleting the write index is 400 "index [x] is the
  write index for data stream [ds] and cannot be deleted"; closing it is allowed (since
  7.12.1, elastic/elasticsearch#70908); deleting another backing index removes it from
  its stream. ``DELETE /_data_stream`` deletes the backing indices. Snapshots record the
  data streams ``indices`` names (``data_streams``) with their backing indices; restores
  bring a named or matched data stream back with its backing indices (renamed past the
  ``.ds-`` prefix), backing indices named alone come back loose. Index-only APIs (delete,
  close, open) leave data stream names out, as 8.x's ``IndexNameExpressionResolver``
  does (nothing happens, or 404 when ``allow_no_indices=false``).
- Aliases keep ``filter``, ``routing`` (as ``index_routing`` + ``search_routing``),
  ``index_routing`` (one value), ``search_routing``, ``is_write_index``, ``is_hidden``,
  rendered by ``GET /_alias`` as ``AliasMetadata`` does; filtered aliases filter
  ``_count``. Alias changes (``POST /_aliases``, index creation, rollover, restore with
  ``include_aliases``) are checked as a whole before anything changes: two write indices
  are 500 ``illegal_state_exception`` "alias [a] has more than one write index [x,y]",
  ``is_hidden`` on some indices only is 500 too; no actions is 400
  ``action_request_validation_exception`` "Validation Failed: 1: no actions specified;".
- Counts: ``docs.count`` of ``_cat/indices`` and ``_stats`` counts Lucene documents, so
  a document with N objects under fields mapped ``{"type": "nested"}`` (at any depth)
  counts 1 + N there while ``_count`` counts it once.
- Restore settings: ``index_settings`` are normalised to ``index.*`` and may set
  ``index.number_of_replicas``; ``ignore_index_settings`` keys are exact (or ``*``
  patterns) as written, no ``index.`` prefix added; ``index.number_of_shards`` etc. cannot
  be modified, ``index.number_of_replicas`` etc. not removed (500
  ``snapshot_restore_exception``). ``index.lifecycle.name`` / ``rollover_alias`` are index
  settings (at creation and through ``PUT /{index}/_settings``).

Known differences from Elasticsearch (8.15):

- One node, one process, no real shards: health follows from ``number_of_replicas`` and
  ``data_nodes`` (default 1, so replicas stay unassigned and an index is yellow), and a
  restored index is red for ``controls.recovery_delay`` seconds. Document routing uses
  CRC32, not murmur3, so which shard a document lands in differs; alias routing is kept
  and shown but does not route.
- ``_count`` understands only match_all/none, term(s), match, match_phrase, prefix,
  wildcard, range, exists, ids and bool, without analysis (lower-cased whitespace
  tokens); there is no ``_search``. Refresh is modelled (a write is counted after a
  refresh, ``?refresh``, or ``index.refresh_interval``), search-idle shards are not.
  Nested documents are counted, not searchable as such (no ``nested`` query).
- Real parameters the double does not implement (``routing``, ``pipeline``, ``version``,
  ``if_seq_no``, ``_source_includes``, ``include_defaults``, ``after``, ...) are refused
  with a 400 naming them rather than ignored; so are component templates, data stream
  aliases and lifecycles, lazy rollover and rollover conditions other than
  ``max_docs``/``max_primary_shard_docs``/``min_docs``/``max_age``. Unknown parameters get
  Elasticsearch's ``unrecognized parameter`` error. ``filter_path`` and ``pretty`` work;
  ``human`` is accepted and ignored; ``_cat`` answers JSON or a plain text table only.
  Unknown index settings are accepted (Elasticsearch refuses them).
- Snapshots are kept in the double's own JSON layout under the repository location (not
  Elasticsearch's blob format); global state other than data streams and feature states
  (cluster settings, templates) is recorded as a flag only; snapshots are never
  incremental; ``_status`` file counts and sizes are approximate. ``s3``/``gcs``/
  ``azure``/``url``/``source`` repositories are opaque and kept in memory. FAILED and
  PARTIAL snapshots happen only through fault injection (or a partial snapshot of a red
  index). A registered repository whose verification fails stays registered, as in
  Elasticsearch.
- Features are only those made through ``controls.add_system_index`` (a real cluster
  lists every installed plugin's); system indices are plain hidden indices otherwise
  (no access deprecation warnings, no net-new system indices, no system data streams).
  A data stream's ``template`` is the highest-priority matching template now, as GET
  computes it; the data stream of a backing index is not checked for direct writes to
  the backing index. Restoring a data stream over a live one of the same name replaces
  it when no open backing index collides (elastic/elasticsearch#74319). A data stream
  name colliding with an existing index is refused ``resource_already_exists_exception``
  (Elasticsearch's wording differs). The ``[line:column]`` of a
  ``document_parsing_exception`` is approximate. ``GET /{data stream}/_doc/{id}`` answers
  ``index_not_found_exception`` (name a backing index).
- Security is basic auth and API keys only (no roles or privileges: an authenticated
  user may do anything); compatible-with 7, 8 and 9 are all accepted.
- The side channel (``controls``) also drops answers (``drop_answer``) or delays them
  (``delay_answer``) after the request was processed in full, to test lost answers.
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
