"""The part sizes of an S3 multipart upload: every object up to S3's 5 TiB fits in its
10,000 parts, each part between 5 MiB and 5 GiB, and memory (one part) stays at the
configured size until the object is large."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backupctl.storage.parts import MAX_OBJECT, MAX_PART, MAX_PARTS, MIB, MIN_PART, PartSizer

GB = 10**9


def upload(total: int, configured: int, hint: int | None = None) -> list[int]:
    """The part sizes an upload of ``total`` bytes goes up in (the last one short)."""
    sizer, sizes, written = PartSizer(configured, hint), [], 0
    while written < total:
        size = sizer.next(len(sizes) + 1, written)
        sizes.append(min(size, total - written))
        written += sizes[-1]
    return sizes


def test_without_an_estimate_5_tib_fits_and_small_objects_keep_the_configured_size() -> None:
    for configured in (5 * MIB, 16 * MIB):
        sizes = upload(MAX_OBJECT, configured)
        assert len(sizes) <= MAX_PARTS and max(sizes) <= MAX_PART
    # up to ~52 GB the 16 MiB default never grows: memory holds one 16 MiB part
    assert set(upload(50 * GB, 16 * MIB)[:-1]) == {16 * MIB}


def test_an_estimate_gives_one_part_size_for_the_whole_object() -> None:
    # the plans' 1 TB datadir, estimated ahead (a full backup knows its datadir)
    sizes = upload(400 * GB, 16 * MIB, hint=10**12)
    assert len(set(sizes[:-1])) == 1 and sizes[0] == 150 * MIB
    assert len(sizes) <= 8_000
    # an estimate too small by 5x still fits: the parts grow once it is passed
    assert len(upload(5 * 10**12, 16 * MIB, hint=10**12)) <= MAX_PARTS


@settings(max_examples=60, deadline=None)
@given(
    configured_mib=st.integers(5, 512),
    total=st.integers(1, MAX_OBJECT),
    hint=st.one_of(st.none(), st.integers(1, MAX_OBJECT)),
)
def test_any_object_up_to_5_tib_fits_whatever_the_estimate(
    configured_mib: int, total: int, hint: int | None
) -> None:
    sizes = upload(total, configured_mib * MIB, hint)
    assert len(sizes) <= MAX_PARTS
    assert all(MIN_PART <= s <= MAX_PART for s in sizes[:-1])
    assert sizes[:-1] == sorted(sizes[:-1])  # parts only ever grow
