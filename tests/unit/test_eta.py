"""Restore plans project each step from the same steps of past restores and drills."""

from __future__ import annotations

from backupctl.runbook.eta import project, total
from backupctl.runbook.records import StepRecord

MIB = 1 << 20


def _step(name: str, seconds: float, size: int | None = None, basis: str = "", ok: bool = True):
    return StepRecord(
        name=name, status="ok" if ok else "failed", seconds=seconds, bytes=size, basis=basis
    )


PAST = [
    _step("fetch-extract", 10.0, 1000 * MIB, "fetch-extract"),  # 100 MiB/s
    _step("fetch-extract", 5.0, 1000 * MIB, "fetch-extract"),  # 200 MiB/s
    _step("fetch-extract", 1.0, 1000 * MIB, "fetch-extract", ok=False),  # failed: not a rate
    _step("apply-incremental-1", 2.0, 100 * MIB, "apply-incremental"),
    _step("stop-services", 3.0),  # a report written before steps had a basis
    _step("stop-services", 5.0, basis="stop-services"),
    _step("verify", 50.0, 1000 * MIB, "verify-full"),
]


def test_a_sized_step_is_projected_at_the_median_rate_of_the_same_basis() -> None:
    eta = project("fetch-extract", 150_000 * MIB, PAST)  # the median of 100 and 200 MiB/s
    assert eta.seconds == 1000.0
    assert eta.how == "146.5 GiB at 150.0 MiB/s (median of 2 past run(s))"
    # the third incremental of this chain, from the first of an earlier one
    assert project("apply-incremental", 50 * MIB, PAST).seconds == 1.0


def test_a_fixed_step_takes_its_median_time_and_a_new_one_is_unknown() -> None:
    assert project("stop-services", None, PAST).seconds == 4.0
    # a standard verification is not projected from full ones
    unknown = project("verify-standard", 1000 * MIB, PAST)
    assert unknown.seconds is None and unknown.how == "never measured"


def test_the_total_leaves_out_what_was_never_measured() -> None:
    projections = [
        project("fetch-extract", 1500 * MIB, PAST),
        project("stop-services", None, PAST),
        project("verify-standard", MIB, PAST),
    ]
    assert total(projections) == (14.0, 1)
    assert total([project("verify-standard", MIB, PAST)]) == (None, 1)
