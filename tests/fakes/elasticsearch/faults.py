"""The side channel of the test double: fault injection, timing knobs and a request log.

Tests get a :class:`FakeControls` from the fixture (``es_cluster.fake``) or from
``FakeElasticsearch.controls``; nothing here is reachable over HTTP.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import EsError
from .names import simple_match


@dataclass
class RecordedRequest:
    """One request as the double saw it, with the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    user: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    answer: Literal["sent", "dropped", "delayed"] = "sent"


@dataclass
class ErrorRule:
    """Answer the next ``remaining`` requests matching ``method`` and ``path`` with an error."""

    method: str
    path: str
    status: int
    error_type: str
    reason: str
    remaining: int | None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        method_ok = self.method in ("*", method.upper())
        return method_ok and simple_match(self.path, path)


@dataclass
class AnswerRule:
    """Process the next ``remaining`` requests matching ``method`` and ``path_regex`` in
    full, then drop the connection (``delay`` None) or answer ``delay`` seconds late."""

    method: str
    path_regex: str
    delay: float | None
    remaining: int | None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        method_ok = self.method in ("*", method.upper())
        return method_ok and re.fullmatch(self.path_regex, path) is not None


@dataclass
class SnapshotFault:
    """How the next snapshot ends: PARTIAL (shard failures) or FAILED."""

    state: Literal["PARTIAL", "FAILED"]
    indices: list[str] | None
    shards: list[int] | None
    reason: str


class FakeControls:
    """Knobs, faults and the request log of one :class:`FakeElasticsearch`.

    - ``snapshot_duration`` (seconds): how long a snapshot stays IN_PROGRESS (a
      ``wait_for_completion=true`` request blocks that long).
    - ``recovery_delay`` (seconds): how long the primaries of a restored index initialize
      (index and cluster health red) before they start.
    - ``requests``: every request, in order (:class:`RecordedRequest`); see :meth:`calls`.
      ``answer`` says whether the answer was ``sent``, ``dropped`` or ``delayed``.
    - :meth:`fail_requests` (an error instead of the work), :meth:`drop_answer` and
      :meth:`delay_answer` (the work done, its answer lost or late),
      :meth:`fail_next_snapshots`, :meth:`deny_repository_writes`, and
      :meth:`add_system_index` (set-up real clients cannot do).
    """

    def __init__(
        self,
        lock: threading.RLock,
        hurry: Callable[[str], None],
        add_system_index: Callable[[str, str, list[dict[str, Any]], str | None], None],
    ) -> None:
        self._lock = lock
        self._hurry = hurry
        self._add_system_index = add_system_index
        self.snapshot_duration = 0.05
        self.recovery_delay = 0.05
        self.requests: list[RecordedRequest] = []
        self._rules: list[ErrorRule] = []
        self._answer_rules: list[AnswerRule] = []
        self._snapshot_faults: list[SnapshotFault] = []
        self._unwritable: set[Path] = set()

    # ----------------------------------------------------------------- time
    def finish_snapshots(self) -> None:
        """End every running snapshot now (as its duration had passed)."""
        with self._lock:
            self._hurry("snapshots")

    def finish_recoveries(self) -> None:
        """Start the primaries of every recovering (restored) index now."""
        with self._lock:
            self._hurry("recoveries")

    # ----------------------------------------------------------------- set-up only it can do
    def add_system_index(
        self,
        feature: str,
        index: str,
        docs: Iterable[dict[str, Any]] = (),
        *,
        description: str | None = None,
    ) -> None:
        """Create the system index ``index`` of ``feature`` (registering the feature for
        ``GET /_features`` and feature states) holding ``docs`` (refreshed), as a plugin
        would: hidden (``index.hidden``), 1 shard, 0 replicas. Real clients cannot create
        system indices, hence a control."""
        with self._lock:
            self._add_system_index(feature, index, list(docs), description)

    # ----------------------------------------------------------------- faults
    def drop_answer(self, method: str, path_regex: str, *, times: int | None = 1) -> AnswerRule:
        """Process the next ``times`` requests (``None``: all) matching ``method`` (or
        ``*``) and ``path_regex`` (``re.fullmatch`` on the decoded path, no query string)
        in full, then close the connection without an answer: the client sees a
        connection error (and retries it, unless built with ``max_retries=0`` or told not
        to retry on connection errors)."""
        rule = AnswerRule(method.upper(), path_regex, None, times)
        with self._lock:
            self._answer_rules.append(rule)
        return rule

    def delay_answer(
        self, method: str, path_regex: str, seconds: float, *, times: int | None = 1
    ) -> AnswerRule:
        """Process the next ``times`` matching requests in full, then wait ``seconds``
        before answering (the node is not blocked meanwhile): a client whose request
        timeout is shorter sees a read timeout although the work was done."""
        rule = AnswerRule(method.upper(), path_regex, float(seconds), times)
        with self._lock:
            self._answer_rules.append(rule)
        return rule

    def fail_requests(
        self,
        method: str,
        path: str,
        *,
        status: int = 503,
        error_type: str = "concurrent_snapshot_execution_exception",
        reason: str = "injected failure",
        times: int | None = 1,
    ) -> ErrorRule:
        """Answer the next ``times`` requests (``None``: all) matching ``method`` (or
        ``*``) and ``path`` (``*`` wildcards, no query string) with an error in ES shape.

        The official client retries 502/503/504 up to ``max_retries`` (3) times: a 503
        with ``times=1`` is invisible to it unless it was built with ``max_retries=0``.
        """
        rule = ErrorRule(method.upper(), path, status, error_type, reason, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail_next_snapshots(
        self,
        state: Literal["PARTIAL", "FAILED"] = "PARTIAL",
        *,
        count: int = 1,
        indices: list[str] | None = None,
        shards: list[int] | None = None,
        reason: str | None = None,
    ) -> None:
        """The next ``count`` snapshots end ``state``.

        PARTIAL: shards ``shards`` (default ``[0]``) of ``indices`` (default: the first
        index of the snapshot, by name) fail; their documents are not stored. FAILED: the
        snapshot fails with ``reason`` and stores nothing restorable.
        """
        if state not in ("PARTIAL", "FAILED"):
            raise ValueError(f"state must be PARTIAL or FAILED, not {state!r}")
        default = (
            "IndexShardSnapshotFailedException[injected shard failure]"
            if state == "PARTIAL"
            else "snapshot failed (injected by the test double)"
        )
        with self._lock:
            for _ in range(count):
                self._snapshot_faults.append(
                    SnapshotFault(state, indices, shards, reason or default)
                )

    def deny_repository_writes(self, location: Path | str) -> None:
        """Make writes under ``location`` fail (verification, snapshots), even as root."""
        with self._lock:
            self._unwritable.add(Path(location).resolve())

    def allow_repository_writes(self, location: Path | str) -> None:
        with self._lock:
            self._unwritable.discard(Path(location).resolve())

    # ----------------------------------------------------------------- log
    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Logged requests, filtered by method and ``*``-wildcard path."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or simple_match(path, r.path))
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ----------------------------------------------------------------- used by the node
    def injected_error(self, method: str, path: str) -> EsError | None:
        for rule in self._rules:
            if rule.remaining != 0 and rule.matches(method, path):
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                return EsError(rule.status, rule.error_type, rule.reason)
        return None

    def answer_fault(self, method: str, path: str) -> AnswerRule | None:
        for rule in self._answer_rules:
            if rule.remaining != 0 and rule.matches(method, path):
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None

    def next_snapshot_fault(self) -> SnapshotFault | None:
        return self._snapshot_faults.pop(0) if self._snapshot_faults else None

    def writable(self, path: Path) -> bool:
        resolved = path.resolve()
        return not any(resolved == p or p in resolved.parents for p in self._unwritable)
