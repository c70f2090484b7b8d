"""One fake Elasticsearch node: its cluster state, repositories, controls and the lock
that serialises requests (waits release it)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cluster import Cluster, Feature
from .faults import FakeControls
from .snapshots import Snapshots
from .values import new_uuid

VERSION = "8.15.3"
POLL_SECONDS = 0.01


class Node:
    def __init__(
        self,
        *,
        cluster_name: str,
        node_name: str,
        path_repo: Sequence[Path | str],
        data_nodes: int,
    ) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock: Callable[[], float] = time.monotonic
        self.node_id = new_uuid()
        self.node_name = node_name
        self.version = VERSION
        self.path_repo = [Path(os.path.normpath(os.path.abspath(p))) for p in path_repo]
        self.controls = FakeControls(self.lock, self._hurry, self._add_system_index)
        self.cluster = Cluster(cluster_name, self.clock, data_nodes)
        self.cluster.node_name = node_name
        self.snapshots = Snapshots(self)
        self.bugs: list[str] = []  # tracebacks of the double's own failures

    def tick(self) -> None:
        """Let time pass: finish the snapshots whose duration has elapsed."""
        self.snapshots.tick(self.clock())

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait (lock released) until ``predicate()``; False when ``timeout`` ran out.

        Call with the lock held.
        """
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            self.tick()
            if predicate():
                return True
            remaining = POLL_SECONDS if deadline is None else deadline - self.clock()
            if remaining <= 0:
                return False
            self.changed.wait(min(POLL_SECONDS, remaining))

    def _hurry(self, what: str) -> None:
        if what == "snapshots":
            for run in self.snapshots.running.values():
                run.finish_at = 0.0
            self.tick()
        else:
            for idx in self.cluster.indices.values():
                idx.recovering_until = 0.0
        self.changed.notify_all()

    def _add_system_index(
        self, feature: str, index: str, docs: list[dict[str, Any]], description: str | None
    ) -> None:
        cluster = self.cluster
        known = cluster.features.get(feature)
        if known is None:
            known = cluster.features[feature] = Feature(
                feature, description or f"Manages the {feature} system indices"
            )
        elif description is not None:
            known.description = description
        if index not in known.patterns:
            known.patterns.append(index)
        settings = {"index.number_of_replicas": "0", "index.hidden": "true"}
        idx = cluster.create_index(index, settings, {}, {}, apply_templates=False)
        idx.system = feature
        now = self.clock()
        for number, source in enumerate(docs):
            idx.put(str(number), source, now)
        idx.refresh()

    def log_bug(self, message: str) -> None:
        self.bugs.append(message)
