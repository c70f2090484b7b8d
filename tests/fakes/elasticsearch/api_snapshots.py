"""``_snapshot`` endpoints: repositories, snapshots, their status, and restore."""

from __future__ import annotations

from typing import Any

from . import errors
from .restore import restore
from .routing import Request, Response, Router
from .snapshots import SORT_KEYS, brief


# --------------------------------------------------------------------- repositories
def put_repository(req: Request) -> Response:
    req.node.snapshots.register(req.params["repository"], req.json(), req.flag("verify", True))
    return Response(body={"acknowledged": True})


def get_repository(req: Request) -> Response:
    repos = req.node.snapshots.select(req.params.get("repository"))
    return Response(body={repo.name: repo.render() for repo in repos})


def delete_repository(req: Request) -> Response:
    req.node.snapshots.unregister(req.params["repository"])
    return Response(body={"acknowledged": True})


def verify_repository(req: Request) -> Response:
    return Response(body=req.node.snapshots.verify(req.params["repository"]))


# --------------------------------------------------------------------- snapshots
def create_snapshot(req: Request) -> Response:
    node = req.node
    repo, name = req.params["repository"], req.params["snapshot"]
    node.snapshots.create(repo, name, req.json())
    if not req.flag("wait_for_completion", False):
        return Response(body={"accepted": True})
    node.wait_until(lambda: (repo, name) not in node.snapshots.running, None)
    entry = node.snapshots.repository(repo).catalog()["snapshots"].get(name)
    if entry is None:
        raise errors.snapshot_error(
            f"{repo}:{name}", "Snapshot was aborted or could not be written"
        )
    return Response(body={"snapshot": entry["info"]})


def _sorted(req: Request, infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sort = req.arg("sort", "start_time") or "start_time"
    if sort not in SORT_KEYS:
        raise errors.illegal_argument(f"invalid snapshot sort order [{sort}]")
    order = req.arg("order", "asc")
    if order not in ("asc", "desc"):
        raise errors.illegal_argument(f"invalid sort order [{order}]")
    key = SORT_KEYS[sort]
    return sorted(
        infos, key=lambda i: (key(i), i["snapshot"], i["repository"]), reverse=order == "desc"
    )


def get_snapshots(req: Request) -> Response:
    snapshots = req.node.snapshots
    ignore = req.flag("ignore_unavailable", False)
    infos = [
        info
        for repo in snapshots.select(req.params["repository"])
        for info in snapshots.infos(repo, req.params["snapshot"], ignore)
    ]
    infos = _sorted(req, infos)
    offset = int(req.arg("offset", "0") or 0)
    size = int(req.arg("size", "-1") or -1)
    page = infos[offset:] if size < 0 else infos[offset : offset + size]
    if not req.flag("verbose", True):
        page = [brief(i, req.flag("index_names", True)) for i in page]
    elif not req.flag("index_names", True):
        page = [{k: v for k, v in i.items() if k != "indices"} for i in page]
    if not req.flag("include_repository", True):
        page = [{k: v for k, v in i.items() if k != "repository"} for i in page]
    return Response(
        body={"snapshots": page, "total": len(infos), "remaining": len(infos) - offset - len(page)}
    )


def delete_snapshot(req: Request) -> Response:
    req.node.snapshots.delete(req.params["repository"], req.params["snapshot"])
    return Response(body={"acknowledged": True})


def snapshot_status(req: Request) -> Response:
    statuses = req.node.snapshots.status(
        req.params.get("repository"),
        req.params.get("snapshot"),
        req.flag("ignore_unavailable", False),
    )
    return Response(body={"snapshots": statuses})


def restore_snapshot(req: Request) -> Response:
    node = req.node
    result = restore(node, req.params["repository"], req.params["snapshot"], req.json())
    if not req.flag("wait_for_completion", False):
        return Response(body={"accepted": True})
    restored = [node.cluster.indices[name] for name in result.indices]
    node.wait_until(lambda: not any(i.recovering(node.clock()) for i in restored), None)
    return Response(
        body={
            "snapshot": {
                "snapshot": result.snapshot,
                "indices": result.indices,
                "shards": {
                    "total": result.shards_total,
                    "failed": result.shards_failed,
                    "successful": result.shards_total - result.shards_failed,
                },
            }
        }
    )


def register(router: Router) -> None:
    router.add("GET", "/_snapshot", get_repository, ("local", "master_timeout"))
    router.add("GET", "/_snapshot/{repository}", get_repository, ("local", "master_timeout"))
    router.add(
        "PUT,POST",
        "/_snapshot/{repository}",
        put_repository,
        ("master_timeout", "timeout", "verify"),
    )
    router.add(
        "DELETE", "/_snapshot/{repository}", delete_repository, ("master_timeout", "timeout")
    )
    router.add(
        "POST", "/_snapshot/{repository}/_verify", verify_repository, ("master_timeout", "timeout")
    )
    router.add(
        "PUT,POST",
        "/_snapshot/{repository}/{snapshot}",
        create_snapshot,
        ("master_timeout", "wait_for_completion"),
    )
    get_params = (
        "ignore_unavailable",
        "include_repository",
        "index_names",
        "master_timeout",
        "offset",
        "order",
        "size",
        "sort",
        "verbose",
    )
    router.add("GET", "/_snapshot/{repository}/{snapshot}", get_snapshots, get_params)
    router.add(
        "DELETE",
        "/_snapshot/{repository}/{snapshot}",
        delete_snapshot,
        ("master_timeout", "wait_for_completion"),
    )
    status_params = ("ignore_unavailable", "master_timeout")
    router.add("GET", "/_snapshot/_status", snapshot_status, status_params)
    router.add("GET", "/_snapshot/{repository}/_status", snapshot_status, status_params)
    router.add("GET", "/_snapshot/{repository}/{snapshot}/_status", snapshot_status, status_params)
    router.add(
        "POST",
        "/_snapshot/{repository}/{snapshot}/_restore",
        restore_snapshot,
        ("master_timeout", "wait_for_completion"),
    )
