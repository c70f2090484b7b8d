"""Tenacity presets for the I/O edges (S3, Elasticsearch HTTP, …).

Retry transient failures only, with bounded exponential backoff, and log every retry.
Callers decide what "transient" means with a predicate; nothing above the I/O edge
retries (a whole backup or restore is never re-run automatically).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in total (the first try included); the wait before
    retry n is ``initial * 2**(n-1)`` seconds, capped at ``maximum``, plus up to
    ``jitter`` seconds of random jitter."""

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 10.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")


DEFAULT_POLICY = RetryPolicy()
#: Same number of attempts, no waiting: for tests.
NO_WAIT = RetryPolicy(initial=0, maximum=0, jitter=0)


def describe_error(exc: BaseException | None) -> str:
    """Return a one-line ``Type: message`` description of ``exc`` for logs."""
    if exc is None:
        return ""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def retrying(
    is_transient: Callable[[BaseException], bool],
    event: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    **context: Any,
) -> Retrying:
    """Return a ``tenacity.Retrying`` that retries exceptions for which ``is_transient``
    is true, at most ``policy.attempts`` times in total, and logs each retry as a
    structlog warning named ``event`` with ``attempt``, ``max_attempts``, ``error``,
    ``sleep`` and ``context`` (e.g. ``operation=...``).

    Use it as ``retrying(...)(fn, *args)``, ``retrying(...).wraps(fn)`` or
    ``for attempt in retrying(...): with attempt: ...``. Once attempts are exhausted,
    or for a non-transient error, the original exception is re-raised unchanged.
    """

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        structlog.get_logger().warning(
            event,
            attempt=state.attempt_number,
            max_attempts=policy.attempts,
            error=describe_error(exc),
            sleep=round(state.next_action.sleep, 3) if state.next_action else 0.0,
            **context,
        )

    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.initial, max=policy.maximum)
        + wait_random(0, policy.jitter),
        before_sleep=log_retry,
        reraise=True,
    )
