"""Several requests in flight for one object, with memory bounded by their number: ranges
read in parallel and handed on in order, parts sent in parallel and collected by number.
One S3 connection carries ~100-200 MB/s; a terabyte needs several."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any


class OrderedRanges:
    """The bytes ``[start, size)`` as ``fetch(begin, end)`` returns them for consecutive
    ranges of ``range_size``, ``concurrency`` fetches at once, handed on in order by
    iterating. ``begin(n)`` starts the first ``n`` before the iteration does (while the
    caller still reads the object's head over its own connection). At most
    ``concurrency`` ranges wait in memory besides the one handed on. ``close()`` (also
    at the end of the iteration, or when it is closed early) cancels what has not
    started and waits for what has."""

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        size: int,
        range_size: int,
        concurrency: int,
        start: int = 0,
    ):
        self._fetch = fetch
        self._todo = (
            (begin, min(begin + range_size, size)) for begin in range(start, size, range_size)
        )
        self._limit = max(1, concurrency)
        self._pool = ThreadPoolExecutor(self._limit, thread_name_prefix="s3-read")
        self._pending: deque[Future[bytes]] = deque()

    def begin(self, n: int | None = None) -> None:
        """Have ``n`` (at most ``concurrency``; None: that many) fetches in flight."""
        want = self._limit if n is None else min(n, self._limit)
        while len(self._pending) < want and (span := next(self._todo, None)) is not None:
            self._pending.append(self._pool.submit(self._fetch, *span))

    def __iter__(self) -> Iterator[bytes]:
        try:
            self.begin()
            while self._pending:
                data = self._pending.popleft().result()
                self.begin()
                yield data
        finally:
            self.close()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class InFlight:
    """Calls of one function run ``limit`` at a time in threads, results kept by a key;
    ``submit`` first waits for the oldest call when ``limit`` are running, so at most
    ``limit`` arguments (parts) are held besides the one being filled."""

    def __init__(self, limit: int, fn: Callable[..., Any]):
        self.limit, self.fn = max(1, limit), fn
        self.results: dict[int, Any] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[int, Future[Any]]] = deque()

    def submit(self, key: int, *args: Any) -> None:
        """Start ``fn(*args)``; its result goes to ``results[key]``. Raises what an
        earlier call raised."""
        while self._pending and (len(self._pending) >= self.limit or self._pending[0][1].done()):
            self._collect_oldest()  # a failure surfaces at the next part at the latest
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.limit, thread_name_prefix="s3-write")
        self._pending.append((key, self._pool.submit(self.fn, *args)))

    def drain(self) -> None:
        """Wait for every call; raise what the first failing one raised."""
        while self._pending:
            self._collect_oldest()
        self.close()

    def cancel(self) -> None:
        """Drop what has not started, wait for what has (its outcome ignored)."""
        for _, future in self._pending:
            future.cancel()
        wait([future for _, future in self._pending])
        self._pending.clear()
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _collect_oldest(self) -> None:
        key, future = self._pending.popleft()
        self.results[key] = future.result()
