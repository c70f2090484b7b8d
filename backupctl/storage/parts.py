"""How big each part of an S3 multipart upload is, so that any object up to S3's 5 TiB
limit fits in its 10,000 parts while memory holds one part.

Parts start at the repository's ``part_size_mb``, or larger when the writer knows about
how much it will write (a full backup knows its datadir): then the estimate with a
quarter to spare fits in 8,000 parts of one size. The size doubles (up to S3's 5 GiB per
part) only when the parts left at the current size could not hold what is still
expected: the rest of the estimate while the estimate holds, otherwise twice what was
written so far. With the default 16 MiB and no estimate, objects up to ~52 GB keep
16 MiB parts and the schedule reaches 10 TiB; a 1 TB datadir estimated ahead goes up in
parts of 150 MiB.
"""

from __future__ import annotations

import math

MIB = 1 << 20
MIN_PART = 5 * MIB  # S3's smallest part (but the last)
MAX_PART = 5 << 30  # S3's largest part
MAX_PARTS = 10_000  # S3's limit on parts per multipart upload
MAX_OBJECT = 5 << 40  # S3's largest object

#: the estimate, with this to spare, fits in PLANNED_PARTS parts of the first size
MARGIN = 1.25
PLANNED_PARTS = 8_000


class PartSizer:
    """The size of each next part of one upload (``max_parts``: S3's limit; tests lower it)."""

    def __init__(
        self, configured: int, size_hint: int | None = None, max_parts: int = MAX_PARTS
    ) -> None:
        self.max_parts = max_parts
        self.expected = size_hint * MARGIN if size_hint else 0.0
        planned = math.ceil(self.expected / (max_parts * PLANNED_PARTS / MAX_PARTS) / MIB) * MIB
        self.size = min(MAX_PART, max(configured, MIN_PART, planned))

    def next(self, number: int, written: int) -> int:
        """The size of part ``number`` (1-based) after ``written`` bytes went up in the
        parts before it."""
        left = self.max_parts - number + 1
        # past the estimate, or without one: be ready for as much again as written
        needed = self.expected - written if self.expected > written else 2.0 * written
        while left * self.size < needed and self.size < MAX_PART:
            self.size = min(MAX_PART, self.size * 2)
        return self.size
