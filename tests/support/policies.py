"""Write policy files for tests, pointing at real test servers and repositories."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.elasticsearch import EsCluster
from tests.support.mariadb import MariaDBServer


def mariadb_policy(
    directory: Path,
    server: MariaDBServer,
    repository: str | dict[str, object],
    name: str = "shop",
    **extra: object,
) -> Path:
    """Write ``<directory>/<name>.yaml`` for ``server``; return its path."""
    policy: dict[str, object] = {
        "version": 1,
        "name": name,
        "driver": "mariadb",
        "connection": {
            "host": "127.0.0.1",
            "port": server.port,
            "user": server.user,
            "password_file": str(server.password_file),
        },
        "datadir": str(server.datadir),
        "repository": repository,
        "schedule": {"full": "0 2 * * *"},
        "retention": {"full": "30d"},
        "objectives": {"rpo": "24h", "rto": "1h"},
        "backup": {"compression_level": 1},
    }
    policy.update(extra)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def restorable_policy(directory: Path, server: MariaDBServer, **restore: object) -> Path:
    """A policy for ``server`` with a ``file://directory/repo`` repository and restore hooks
    (``directory/hooks/stop.sh``, ``start.sh``) that really stop and start the server."""
    stop, start = server.instance.write_service_hooks(directory / "hooks")
    return mariadb_policy(
        directory / "policies",
        server,
        f"file://{directory / 'repo'}",
        restore={"stop": [str(stop)], "start": [str(start)], **restore},
    )


def search_policy(
    directory: Path, es: EsCluster, repository: Path, name: str = "search", **extra: object
) -> Path:
    """Write ``<directory>/<name>.yaml``: snapshots of ``es``'s ``<prefix>-orders-*``
    indices, manifests in ``repository`` (``extra`` replaces or adds top-level fields);
    return its path."""
    policy: dict[str, object] = {
        "version": 1,
        "name": name,
        "driver": "elasticsearch",
        "connection": {"url": es.url},
        "snapshot_repository": {
            "name": es.name("repo"),
            "type": "fs",
            "settings": {"location": es.repo_location("snapshots")},
        },
        "repository": f"file://{repository}",
        "indices": [es.name("orders") + "-*"],
        "schedule": {"snapshot": "30 2 * * *"},
        "retention": {"expire_after": "30d", "min_count": 1, "max_count": 10},
        "objectives": {"rpo": "24h", "rto": "2h"},
        **extra,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path
