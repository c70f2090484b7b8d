"""Sample data that does not compress away: enough stored bytes for multipart uploads
and for filling small filesystems."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from backupctl.demo import sample_data
from tests.support.mariadb import MariaDBServer


def fill_with_noise(server: MariaDBServer, size_mb: int, noise_mb: int) -> None:
    """The ``shop`` sample database (compresses ~13x) plus ``noise_mb`` MiB of
    incompressible rows in ``shop.noise``."""
    conn = server.connect()
    try:
        sample_data.generate(conn, "shop", size_mb)
    finally:
        conn.close()
    _noise_table(server, "shop", noise_mb)


def _noise_table(server: MariaDBServer, database: str, mib: int) -> None:
    """``database.noise``: ``mib`` MiB of rows of SHA-512 hashes (1 KiB each)."""
    hashes = ", ".join(f"UNHEX(SHA2(CONCAT(seq, '-{k}'), 512))" for k in range(16))
    server.sql(
        f"CREATE OR REPLACE TABLE {database}.noise (id INT PRIMARY KEY, data BLOB)",
        f"INSERT INTO {database}.noise SELECT seq, CONCAT({hashes}) "
        f"FROM {database}.seq_1_to_{mib * 1024}",
    )


@contextmanager
def noise_database(server: MariaDBServer, database: str, mib: int) -> Iterator[None]:
    """A database ``database`` holding ``mib`` MiB that do not compress, dropped after."""
    server.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    try:
        _noise_table(server, database, mib)
        yield
    finally:
        server.sql(f"DROP DATABASE {database}")
