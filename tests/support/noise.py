"""Sample data that does not compress away: enough stored bytes for multipart uploads
and for filling small filesystems."""

from __future__ import annotations

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
    hashes = ", ".join(f"UNHEX(SHA2(CONCAT(seq, '-{k}'), 512))" for k in range(16))
    server.sql(
        "CREATE TABLE shop.noise (id INT PRIMARY KEY, data BLOB)",
        f"INSERT INTO shop.noise SELECT seq, CONCAT({hashes}) FROM shop.seq_1_to_{noise_mb * 1024}",
    )
