"""Resources sized from the host unless the policy says: the buffer pool of ``mariabackup
--prepare`` (a quarter of the available memory, from 256M to 16G) and the connections
that check tables after a restore (one per CPU, at most 8)."""

from __future__ import annotations

import os

import pytest

from backupctl.drivers.mariadb.extract import default_prepare_memory
from backupctl.policy.mariadb import MariaDBBackupOptions, MariaDBRestore

GIB = 1 << 30


@pytest.mark.parametrize(
    ("available", "expected"),
    [(400 << 20, "256M"), (8 * GIB, "2048M"), (200 * GIB, "16384M"), (0, "256M")],
)
def test_default_is_a_quarter_of_what_is_available_within_bounds(
    available: int, expected: str
) -> None:
    assert default_prepare_memory(available) == expected


def test_the_default_reads_this_machine() -> None:
    assert 256 <= int(default_prepare_memory().removesuffix("M")) <= 16384


def test_the_policy_value_is_a_size_mariabackup_understands() -> None:
    assert MariaDBBackupOptions(prepare_memory="8G").prepare_memory == "8G"
    with pytest.raises(ValueError, match="prepare_memory"):
        MariaDBBackupOptions(prepare_memory="8 GB")


def test_table_checks_use_one_connection_per_cpu_unless_the_policy_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """restore.check_parallel: 0 (the default) is one connection per CPU, at most 8."""
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert MariaDBRestore().check_connections == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert MariaDBRestore().check_connections == 8
    assert MariaDBRestore(check_parallel=3).check_connections == 3
    with pytest.raises(ValueError, match="check_parallel"):
        MariaDBRestore(check_parallel=-1)
