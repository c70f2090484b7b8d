"""Repositories and snapshots: registration, creation (IN_PROGRESS, then SUCCESS,
PARTIAL or FAILED), listing, status and deletion. Restoring lives in ``restore.py``.

A snapshot captures the documents of its indices when it starts (as the flush before a
shard snapshot does, unrefreshed writes included) and is written to its repository
when it finishes, ``controls.snapshot_duration`` seconds later.

As ``SnapshotsService.createSnapshot`` does: system indices are never taken through
``indices`` (matched by a pattern they are left out; named, the request is refused) but
through feature states (all of them with ``include_global_state`` and no
``feature_states``; ``["none"]``: none; otherwise the named ones, unknown names ignored,
features without indices left out), whose indices join the snapshot's ``indices``. Data
streams matched by ``indices`` are recorded in ``data_streams`` (their definitions in
the repository, as global metadata is, whatever ``include_global_state``) and their
backing indices in ``indices``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .cluster import Index, Targets, shard_of
from .names import expand, has_wildcard, simple_match, validate_snapshot_name
from .repository import (
    OPAQUE_TYPES,
    FsStore,
    MemoryStore,
    Repository,
    Store,
    fs_location,
    parse_registration,
    verification_error,
)
from .values import as_list, iso_millis, new_uuid, now_millis, parse_bool

if TYPE_CHECKING:
    from .faults import SnapshotFault
    from .node import Node

CREATE_KEYS = {
    "indices",
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "include_global_state",
    "partial",
    "metadata",
    "feature_states",
}
MAX_METADATA_BYTES = 1024
VERSION_ID = 8512000
SORT_KEYS = {
    "start_time": lambda i: i["start_time_in_millis"],
    "name": lambda i: i["snapshot"],
    "duration": lambda i: i.get("duration_in_millis", 0),
    "index_count": lambda i: len(i["indices"]),
    "shard_count": lambda i: i["shards"]["total"],
    "failed_shard_count": lambda i: i["shards"]["failed"],
    "repository": lambda i: i["repository"],
}


@dataclass
class Running:
    """A snapshot in progress: the data it captured and how it will end."""

    repository: str
    name: str
    uuid: str
    indices: list[str]
    start_ms: int
    finish_at: float
    include_global_state: bool
    partial: bool
    metadata: dict[str, Any] | None
    payloads: dict[str, dict[str, Any]]
    data_streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_states: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None  # set: the snapshot ends FAILED

    def final_state(self) -> str:
        if self.reason is not None:
            return "FAILED"
        return "PARTIAL" if self.failures else "SUCCESS"

    def shard_counts(self) -> dict[str, int]:
        return {i: int(p["settings"]["index.number_of_shards"]) for i, p in self.payloads.items()}

    def total_shards(self) -> int:
        return sum(self.shard_counts().values())

    def info(self) -> dict[str, Any]:
        return snapshot_info(self, "IN_PROGRESS", None)


def snapshot_info(run: Running, state: str, end_ms: int | None) -> dict[str, Any]:
    """The ``SnapshotInfo`` JSON of a snapshot (verbose form)."""
    info: dict[str, Any] = {
        "snapshot": run.name,
        "uuid": run.uuid,
        "repository": run.repository,
        "version_id": VERSION_ID,
        "version": "8.15.3",
        "indices": list(run.indices),
        "data_streams": sorted(run.data_streams),
        "include_global_state": run.include_global_state,
    }
    if run.metadata is not None:
        info["metadata"] = run.metadata
    info["state"] = state
    if state == "FAILED" and run.reason:
        info["reason"] = run.reason
    info["start_time"] = iso_millis(run.start_ms)
    info["start_time_in_millis"] = run.start_ms
    total = run.total_shards() if state != "IN_PROGRESS" else 0
    failed = len(run.failures) if state != "IN_PROGRESS" else 0
    # a running snapshot has no end yet: Elasticsearch prints the epoch and a 0 duration
    info["end_time"] = iso_millis(end_ms or 0)
    info["end_time_in_millis"] = end_ms or 0
    info["duration_in_millis"] = max(0, (end_ms or 0) - run.start_ms)
    info["failures"] = list(run.failures) if state != "IN_PROGRESS" else []
    info["shards"] = {"total": total, "failed": failed, "successful": total - failed}
    info["feature_states"] = [
        {"feature_name": f["feature_name"], "indices": list(f["indices"])}
        for f in run.feature_states
    ]
    return info


def brief(info: dict[str, Any], index_names: bool) -> dict[str, Any]:
    """``verbose=false``: names, uuid, repository, indices and state only."""
    keys = ["snapshot", "uuid", "repository", "indices", "data_streams", "state"]
    return {k: info[k] for k in keys if k in info and (index_names or k != "indices")}


def capture(idx: Index) -> dict[str, Any]:
    """What a snapshot keeps of an index: metadata and every document."""
    return {
        "name": idx.name,
        "uuid": idx.uuid,
        "creation_date": idx.creation_date,
        "settings": dict(idx.settings),
        "mappings": copy.deepcopy(idx.mappings),
        "aliases": copy.deepcopy(idx.aliases),
        "system": idx.system,
        "docs": {
            doc_id: {"source": copy.deepcopy(doc.source), "version": doc.version}
            for doc_id, doc in idx.docs.items()
        },
        "failed_shards": [],
    }


class Snapshots:
    """Registered repositories and running snapshots of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.repositories: dict[str, Repository] = {}
        self.running: dict[tuple[str, str], Running] = {}
        self._memory: dict[str, MemoryStore] = {}

    # ----------------------------------------------------------------- repositories
    def register(self, name: str, body: Any, verify: bool) -> None:
        repo_type, settings = parse_registration(body)
        if any(key[0] == name for key in self.running) and name in self.repositories:
            raise errors.EsError(
                409,
                "repository_conflict_exception",
                f"[{name}] trying to modify or unregister repository that is currently used",
            )
        self.repositories[name] = Repository(
            name, repo_type, settings, self._store(name, repo_type, settings)
        )
        if verify:
            self.verify(name)

    def _store(self, name: str, repo_type: str, settings: dict[str, Any]) -> Store:
        if repo_type == "fs":
            location = fs_location(name, settings, self.node.path_repo)
            return FsStore(location, self.node.controls.writable)
        if repo_type in OPAQUE_TYPES:
            key = json.dumps([repo_type, settings], sort_keys=True)
            return self._memory.setdefault(key, MemoryStore())
        raise errors.EsError(
            500,
            "repository_exception",
            f"[{name}] repository type [{repo_type}] does not exist",
        )

    def repository(self, name: str) -> Repository:
        repo = self.repositories.get(name)
        if repo is None:
            raise errors.repository_missing(name)
        return repo

    def select(self, expression: Any, ignore_missing: bool = False) -> list[Repository]:
        names, missing = expand(as_list(expression) or ["_all"], sorted(self.repositories))
        if missing and not ignore_missing:
            raise errors.repository_missing(missing[0])
        return [self.repositories[n] for n in names]

    def unregister(self, expression: str) -> None:
        for repo in self.select(expression):
            if any(key[0] == repo.name for key in self.running):
                raise errors.EsError(
                    409,
                    "repository_conflict_exception",
                    f"[{repo.name}] trying to modify or unregister repository that is "
                    "currently used",
                )
            del self.repositories[repo.name]

    def verify(self, name: str) -> dict[str, Any]:
        repo = self.repository(name)
        try:
            repo.store.check_writable()
        except OSError as error:
            raise verification_error(name, error) from None
        return {"nodes": {self.node.node_id: {"name": self.node.node_name}}}

    # ----------------------------------------------------------------- creation
    def create(self, repo_name: str, name: str, body: Any) -> Running:
        repo = self.repository(repo_name)
        validate_snapshot_name(repo_name, name)
        options = self._create_options(body)
        if name in repo.catalog()["snapshots"]:
            raise errors.snapshot_name_in_use(
                repo_name, name, "snapshot with the same name already exists"
            )
        if (repo_name, name) in self.running:
            raise errors.snapshot_name_in_use(
                repo_name, name, "snapshot with the same name is already in-progress"
            )
        indices = self._snapshot_indices(options)
        named = set(options["indices"])
        explicit = sorted(i.name for i in indices if i.system is not None and i.name in named)
        if explicit:
            raise errors.illegal_argument(
                f"the [indices] parameter includes system indices [{', '.join(explicit)}]; to "
                "include or exclude system indices from a snapshot, use the "
                "[include_global_state] or [feature_states] parameters"
            )
        indices = [i for i in indices if i.system is None]
        feature_states = self._feature_states(options)
        taken = {i.name for i in indices}
        for state in feature_states:
            for index in state["indices"]:
                if index not in taken:
                    indices.append(self.node.cluster.indices[index])
                    taken.add(index)
        indices.sort(key=lambda i: i.name)
        data_streams = self._data_streams(options)
        snapshot = f"{repo_name}:{name}/{new_uuid()}"
        now = self.node.clock()
        red = [i.name for i in indices if i.recovering(now)]
        if red and not options["partial"]:
            raise errors.snapshot_error(
                snapshot, f"Indices don't have primary shards [{', '.join(red)}]"
            )
        run = Running(
            repository=repo_name,
            name=name,
            uuid=snapshot.rsplit("/", 1)[1],
            indices=[i.name for i in indices],
            start_ms=now_millis(),
            finish_at=now + max(self.node.controls.snapshot_duration, 0.0),
            include_global_state=options["include_global_state"],
            partial=options["partial"],
            metadata=options["metadata"],
            payloads={i.name: capture(i) for i in indices},
            data_streams=data_streams,
            feature_states=feature_states,
        )
        for index in red:
            self._fail_shards(run, index, None, "primary shard is not allocated")
        self._apply_fault(run, self.node.controls.next_snapshot_fault())
        self.running[(repo_name, name)] = run
        self.tick(now)
        return run

    def _create_options(self, body: Any) -> dict[str, Any]:
        body = body or {}
        if not isinstance(body, dict):
            raise errors.parse_error("malformed create snapshot request")
        for key in body:
            if key not in CREATE_KEYS:
                raise errors.illegal_argument(f"Unknown parameter {key}")
        feature_states = body.get("feature_states")
        if feature_states is not None and not isinstance(feature_states, list):
            raise errors.parse_error("malformed feature_states, expected an array of strings")
        requested = [str(f) for f in feature_states or []]
        if len(requested) > 1 and "none" in requested:
            raise errors.illegal_argument(
                "the feature_states value [none] indicates that no feature states should be "
                f"snapshotted, but other feature states were requested: [{', '.join(requested)}]"
            )
        metadata = body.get("metadata")
        if metadata is not None:
            size = len(json.dumps(metadata, separators=(",", ":")).encode())
            if size > MAX_METADATA_BYTES:
                raise errors.validation_failed(
                    f"metadata must be smaller than 1024 bytes, but was [{size}]"
                )
        return {
            "indices": as_list(body.get("indices")),
            "ignore_unavailable": parse_bool(body.get("ignore_unavailable", False)),
            "allow_no_indices": parse_bool(body.get("allow_no_indices", True)),
            "expand_wildcards": as_list(body.get("expand_wildcards")) or ["all"],
            "include_global_state": parse_bool(body.get("include_global_state", True)),
            "partial": parse_bool(body.get("partial", False)),
            "metadata": metadata,
            "feature_states": requested,
        }

    def _feature_states(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        """``[{"feature_name", "indices"}]`` of the features the snapshot takes."""
        cluster = self.node.cluster
        requested = options["feature_states"]
        if not requested:
            names = sorted(cluster.features) if options["include_global_state"] else []
        elif [r.lower() for r in requested] == ["none"]:
            names = []
        else:
            names = sorted(set(requested) & set(cluster.features))
        states = []
        for name in names:
            feature = cluster.features[name]
            owned = sorted(
                i.name for i in cluster.indices.values() if i.system == name or feature.owns(i.name)
            )
            if owned:
                states.append({"feature_name": name, "indices": owned})
        return states

    def _data_streams(self, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """``IndexNameExpressionResolver.dataStreamNames``: the streams ``indices`` names."""
        cluster = self.node.cluster
        states = set(options["expand_wildcards"])
        hidden_ok = bool(states & {"hidden", "all"})
        found: dict[str, dict[str, Any]] = {}
        wildcard_seen = False
        expressions = options["indices"] or ["_all"]
        if expressions[0].startswith("-"):
            expressions = ["*", *expressions]
        for expr in expressions:
            if expr.startswith("-") and wildcard_seen:
                for name in [n for n in found if simple_match(expr[1:], n)]:
                    del found[name]
                continue
            for ds in cluster.data_streams.values():
                if has_wildcard(expr):
                    dotted = ds.name.startswith(".") and expr.startswith(".")
                    if simple_match(expr, ds.name) and (not ds.hidden or hidden_ok or dotted):
                        found[ds.name] = ds.describe()
                elif expr == ds.name:
                    found[ds.name] = ds.describe()
            wildcard_seen = wildcard_seen or has_wildcard(expr)
        return found

    def _snapshot_indices(self, options: dict[str, Any]) -> list[Index]:
        targets = Targets(
            wildcards=frozenset(options["expand_wildcards"]),
            ignore_unavailable=options["ignore_unavailable"],
            allow_no_indices=options["allow_no_indices"],
        )
        expressions = options["indices"]
        if expressions and expressions[0].startswith("-"):  # "-*": exclude everything
            expressions = ["*", *expressions]
        return self.node.cluster.resolve(expressions, targets)

    def _fail_shards(self, run: Running, index: str, shards: list[int] | None, reason: str) -> None:
        payload = run.payloads[index]
        count = int(payload["settings"]["index.number_of_shards"])
        for shard in [s for s in (shards or range(count)) if 0 <= s < count]:
            if shard in payload["failed_shards"]:
                continue
            payload["failed_shards"].append(shard)
            run.failures.append(
                {
                    "index": index,
                    "index_uuid": index,
                    "shard_id": shard,
                    "reason": reason,
                    "node_id": self.node.node_id,
                    "status": "INTERNAL_SERVER_ERROR",
                }
            )

    def _apply_fault(self, run: Running, fault: SnapshotFault | None) -> None:
        if fault is None or not run.indices:
            return
        targets = [i for i in (fault.indices or run.indices[:1]) if i in run.payloads]
        for index in targets:
            self._fail_shards(run, index, fault.shards or [0], fault.reason)
        if fault.state == "FAILED":
            run.reason = fault.reason

    # ----------------------------------------------------------------- completion
    def tick(self, now: float) -> None:
        for key, run in list(self.running.items()):
            if now >= run.finish_at:
                del self.running[key]
                self._finish(run)
                self.node.changed.notify_all()

    def _finish(self, run: Running) -> None:
        repo = self.repositories.get(run.repository)
        if repo is None:
            return
        state = run.final_state()
        info = snapshot_info(run, state, max(now_millis(), run.start_ms))
        sizes: dict[str, int] = {}
        try:
            for index, payload in run.payloads.items():
                failed = set(payload["failed_shards"])
                count = int(payload["settings"]["index.number_of_shards"])
                payload["docs"] = {
                    doc_id: doc
                    for doc_id, doc in payload["docs"].items()
                    if state != "FAILED" and shard_of(doc_id, count) not in failed
                }
                sizes[index] = len(json.dumps(payload))
                repo.store.write_index(run.uuid, index, payload)
            catalog = repo.catalog()
            catalog["uuid"] = catalog.get("uuid") or new_uuid()
            catalog["snapshots"][run.name] = {
                "info": info,
                "sizes": sizes,
                "shards": run.shard_counts(),
                "data_streams": run.data_streams,
            }
            repo.store.write_catalog(catalog)
        except OSError:  # the repository went away or became read-only: nothing is kept
            repo.store.delete_snapshot(run.uuid)

    # ----------------------------------------------------------------- reading
    def finished(self, repo: Repository) -> dict[str, dict[str, Any]]:
        return dict(repo.catalog()["snapshots"])

    def infos(
        self, repo: Repository, expression: Any, ignore_unavailable: bool
    ) -> list[dict[str, Any]]:
        """Snapshot infos of ``repo`` named by ``expression`` (names, wildcards, _all, _current)."""
        done = {name: entry["info"] for name, entry in self.finished(repo).items()}
        current = {k[1]: r.info() for k, r in self.running.items() if k[0] == repo.name}
        found: dict[str, dict[str, Any]] = {}
        for expr in as_list(expression) or ["_all"]:
            if expr == "_current":
                found.update(current)
                continue
            names, missing = expand([expr], [*done, *current])
            found.update((n, done.get(n) or current[n]) for n in names)
            if missing and not ignore_unavailable:
                raise errors.snapshot_missing(repo.name, missing[0])
        return list(found.values())

    def delete(self, repo_name: str, expression: str) -> None:
        repo = self.repository(repo_name)
        catalog = repo.catalog()
        pool = [*catalog["snapshots"], *(k[1] for k in self.running if k[0] == repo_name)]
        names, missing = expand(as_list(expression), pool)
        if missing:
            raise errors.snapshot_missing(repo_name, missing[0])
        self._not_restoring(repo_name, names, catalog)
        for name in names:
            run = self.running.pop((repo_name, name), None)  # deleting aborts it
            entry = catalog["snapshots"].pop(name, None)
            uuid = run.uuid if run else entry["info"]["uuid"] if entry else None
            if uuid:
                repo.store.delete_snapshot(uuid)
        if names:
            repo.store.write_catalog(catalog)
        self.node.changed.notify_all()

    def _not_restoring(self, repo_name: str, names: list[str], catalog: dict[str, Any]) -> None:
        now = self.node.clock()
        for idx in self.node.cluster.indices.values():
            source = idx.restored_from
            if idx.recovering(now) and source and source[0] == repo_name and source[1] in names:
                uuid = catalog["snapshots"][source[1]]["info"]["uuid"]
                raise errors.EsError(
                    503,
                    "concurrent_snapshot_execution_exception",
                    f"[{repo_name}:{source[1]}/{uuid}] cannot delete snapshot during a restore "
                    f"in progress in [[{idx.name}]]",
                )

    def status(
        self, repo_name: str | None, expression: str | None, ignore_unavailable: bool
    ) -> list[dict[str, Any]]:
        if repo_name is None or expression is None:
            return [
                self._status(r.info(), r.shard_counts(), {}, "STARTED")
                for key, r in self.running.items()
                if repo_name is None or key[0] == repo_name
            ]
        repo = self.repository(repo_name)
        done = self.finished(repo)
        found: list[dict[str, Any]] = []
        for name in as_list(expression):
            if has_wildcard(name):
                raise errors.illegal_argument(
                    f"wildcards are not allowed in snapshot names [{name}]"
                )
            run = self.running.get((repo_name, name))
            if run is not None:
                found.append(self._status(run.info(), run.shard_counts(), {}, "STARTED"))
            elif name in done:
                entry = done[name]
                # PARTIAL is reported as SUCCESS here, as Elasticsearch does
                state = "FAILED" if entry["info"]["state"] == "FAILED" else "SUCCESS"
                found.append(self._status(entry["info"], entry["shards"], entry["sizes"], state))
            elif not ignore_unavailable:
                raise errors.snapshot_missing(repo_name, name)
        return found

    def _status(
        self, info: dict[str, Any], shards: dict[str, int], sizes: dict[str, int], state: str
    ) -> dict[str, Any]:
        failed_by_index: dict[str, set[int]] = {}
        for failure in info.get("failures", []):
            failed_by_index.setdefault(failure["index"], set()).add(failure["shard_id"])
        stage = "STARTED" if state == "STARTED" else "DONE"
        indices = {
            index: _index_status(
                shards[index],
                failed_by_index.get(index, set()),
                stage,
                sizes.get(index, 0),
                info["start_time_in_millis"],
            )
            for index in info["indices"]
        }
        totals = _shard_stats([s["stage"] for i in indices.values() for s in i["shards"].values()])
        size = sum(sizes.values())
        return {
            "snapshot": info["snapshot"],
            "repository": info["repository"],
            "uuid": info["uuid"],
            "state": state,
            "include_global_state": info["include_global_state"],
            "shards_stats": totals,
            "stats": _stats(size, info["start_time_in_millis"], info.get("duration_in_millis", 0)),
            "indices": indices,
        }


def _stats(size: int, start_ms: int, took_ms: int) -> dict[str, Any]:
    files = {"file_count": 1 if size else 0, "size_in_bytes": size}
    return {
        "incremental": dict(files),
        "total": dict(files),
        "start_time_in_millis": start_ms,
        "time_in_millis": took_ms,
    }


def _shard_stats(stages: list[str]) -> dict[str, int]:
    return {
        "initializing": 0,
        "started": stages.count("STARTED"),
        "finalizing": 0,
        "done": stages.count("DONE"),
        "failed": stages.count("FAILURE"),
        "total": len(stages),
    }


def _index_status(
    shards: int, failed: set[int], stage: str, size: int, start_ms: int
) -> dict[str, Any]:
    per_shard: dict[str, dict[str, Any]] = {
        str(n): {
            "stage": "FAILURE" if n in failed else stage,
            "stats": _stats(size // shards if n not in failed else 0, start_ms, 0),
        }
        for n in range(shards)
    }
    return {
        "shards_stats": _shard_stats([s["stage"] for s in per_shard.values()]),
        "stats": _stats(size, start_ms, 0),
        "shards": per_shard,
    }
