"""Requests in flight for one object: ranges handed on in order, parts collected by
number, memory bounded by the number in flight, failures never lost."""

from __future__ import annotations

import threading
import time

import pytest

from backupctl.storage.transfer import InFlight, OrderedRanges


def test_ranges_come_back_in_order_however_they_finish() -> None:
    seen: list[tuple[int, int]] = []

    def fetch(begin: int, end: int) -> bytes:
        time.sleep(0.02 if (begin // 10) % 2 else 0)  # every other range is slow
        seen.append((begin, end))
        return bytes([begin // 10]) * (end - begin)

    got = list(OrderedRanges(fetch, 95, 10, 4, start=5))
    assert b"".join(got) == b"".join(
        bytes([b // 10]) * (min(b + 10, 95) - b) for b in range(5, 95, 10)
    )
    assert sorted(seen) == [(b, min(b + 10, 95)) for b in range(5, 95, 10)]


def test_no_more_ranges_are_held_than_in_flight() -> None:
    held = [0]
    most = [0]
    lock = threading.Lock()

    def fetch(begin: int, end: int) -> bytes:
        with lock:
            held[0] += 1
            most[0] = max(most[0], held[0])
        return b"x" * (end - begin)

    for _chunk in OrderedRanges(fetch, 1000, 10, 3):
        with lock:
            held[0] -= 1  # handed on and dropped by the consumer
    assert most[0] <= 3 + 1


def test_closing_early_stops_fetching() -> None:
    fetched: list[int] = []

    def fetch(begin: int, end: int) -> bytes:
        fetched.append(begin)
        return b"x"

    ranges = OrderedRanges(fetch, 10_000, 1, 2)
    next(iter(ranges))
    ranges.close()
    assert len(fetched) <= 4  # what was in flight, never the 10,000 ranges


def test_begin_starts_fetches_before_the_iteration_and_they_are_not_repeated() -> None:
    started = threading.Event()
    fetched: list[int] = []

    def fetch(begin: int, end: int) -> bytes:
        fetched.append(begin)
        started.set()
        return bytes(end - begin)

    ranges = OrderedRanges(fetch, 50, 10, 3, start=10)
    ranges.begin(1)
    assert started.wait(5)  # running while the caller still reads the object's head
    assert fetched == [10]
    assert sum(len(chunk) for chunk in ranges) == 40
    assert sorted(fetched) == [10, 20, 30, 40]


def test_a_failed_call_surfaces_at_the_next_submit_or_the_drain() -> None:
    def send(number: int) -> str:
        if number == 2:
            raise OSError("part 2 refused")
        return f"etag-{number}"

    calls = InFlight(2, send)
    calls.submit(1, 1)
    calls.submit(2, 2)
    with pytest.raises(OSError, match="part 2 refused"):
        for number in range(3, 10):
            calls.submit(number, number)
        calls.drain()
    calls.cancel()


def test_results_are_kept_by_key_and_at_most_limit_run_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def send(number: int) -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return f"etag-{number}"

    calls = InFlight(3, send)
    for number in range(1, 21):
        calls.submit(number, number)
    calls.drain()
    assert calls.results == {n: f"etag-{n}" for n in range(1, 21)}
    assert 1 < most[0] <= 3
