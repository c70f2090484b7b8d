"""Deterministic sample data of a chosen size, generated inside the server.

Rows are pure functions of a sequence number (``seq_1_to_N`` of the SEQUENCE engine),
so two runs with the same arguments produce identical tables (identical
``CHECKSUM TABLE`` values and row counts), the binlog stays small (statement
format logs one ``INSERT ... SELECT`` per chunk), and nothing loops over rows in
Python. Hex digests keep the data only moderately compressible (zstd ~2-4x).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
import structlog

from backupctl.errors import ToolError, UsageError

log = structlog.get_logger()

Progress = Callable[[str, int, int], None]
"""``progress(table, rows_done, rows_total)``, called after each chunk."""

CHUNK_ROWS = 250_000
_TABLE_OVERHEAD = 8 * 1024 * 1024


@dataclass(frozen=True)
class _Table:
    name: str
    weight: float  # share of the target size
    bytes_per_row: float  # measured growth of the .ibd file per row (data + indexes)
    ddl: str
    select: str  # SELECT over ``seq`` producing the columns, may use {customers}/{orders}


_CUSTOMERS = _Table(
    "customers",
    2,
    279,
    "id INT UNSIGNED NOT NULL PRIMARY KEY, email VARCHAR(100) NOT NULL,"
    " full_name VARCHAR(100) NOT NULL, country CHAR(2) NOT NULL, created_at DATETIME NOT NULL,"
    " notes TEXT NOT NULL, KEY idx_email (email), KEY idx_created (created_at)",
    "SELECT seq, CONCAT('user', seq, '.', LEFT(MD5(seq), 6), '@example.com'),"
    " CONCAT(ELT(1 + seq % 8, 'Ada', 'Bob', 'Chen', 'Dana', 'Emil', 'Fay', 'Gus', 'Hana'), ' ',"
    " ELT(1 + (seq DIV 8) % 6, 'Smith', 'Lopez', 'Novak', 'Kim', 'Berg', 'Rossi')),"
    " ELT(1 + CRC32(seq) % 6, 'DE', 'FR', 'US', 'GB', 'IT', 'PL'),"
    " TIMESTAMP('2023-01-01') + INTERVAL (seq * 53) SECOND,"
    " CONCAT(SHA2(CONCAT('c', seq), 256), ' ', MD5(CONCAT('n', seq)))",
)
_ORDERS = _Table(
    "orders",
    3,
    192,
    "id BIGINT UNSIGNED NOT NULL PRIMARY KEY, customer_id INT UNSIGNED NOT NULL,"
    " status VARCHAR(16) NOT NULL, total DECIMAL(12,2) NOT NULL, created_at DATETIME NOT NULL,"
    " shipping_address VARCHAR(255) NOT NULL, KEY idx_customer (customer_id),"
    " KEY idx_created (created_at)",
    "SELECT seq, 1 + CRC32(CONCAT('o', seq)) % {customers},"
    " ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),"
    " (CRC32(CONCAT('t', seq)) % 5000000) / 100,"
    " TIMESTAMP('2024-01-01') + INTERVAL (seq * 7) SECOND,"
    " CONCAT(1 + seq % 9999, ' ', ELT(1 + seq % 4, 'Main', 'Oak', 'Elm', 'Mill'), ' St, ',"
    " SHA2(CONCAT('a', seq), 256))",
)
_ITEMS = _Table(
    "order_items",
    5,
    198,
    "id BIGINT UNSIGNED NOT NULL PRIMARY KEY, order_id BIGINT UNSIGNED NOT NULL,"
    " sku VARCHAR(32) NOT NULL, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL,"
    " description VARCHAR(255) NOT NULL, KEY idx_order (order_id)",
    "SELECT seq, 1 + (seq - 1) % {orders}, CONCAT('SKU-', LPAD(CRC32(seq) % 100000, 6, '0')),"
    " 1 + seq % 7, (CRC32(CONCAT('p', seq)) % 100000) / 100,"
    " CONCAT(ELT(1 + seq % 6, 'red', 'blue', 'green', 'large', 'small', 'premium'), ' ',"
    " ELT(1 + (seq DIV 6) % 5, 'widget', 'gadget', 'gizmo', 'sprocket', 'bolt'), ' ',"
    " MD5(seq), ' ', LEFT(SHA2(seq, 256), 40))",
)


def _events(n: int) -> _Table:
    return _Table(
        f"events_{n}",
        3,
        241,
        "id BIGINT UNSIGNED NOT NULL PRIMARY KEY, created_at DATETIME NOT NULL,"
        " kind VARCHAR(32) NOT NULL, payload TEXT NOT NULL, KEY idx_created (created_at)",
        "SELECT seq, TIMESTAMP('2024-06-01') + INTERVAL (seq * 3) SECOND,"
        " ELT(1 + seq % 4, 'login', 'view', 'cart', 'checkout'),"
        f" CONCAT(SHA2(CONCAT('e{n}', seq), 512), ' ', MD5(seq))",
    )


def _layout(target_mb: float, tables: int) -> list[tuple[_Table, int]]:
    specs = [_CUSTOMERS, _ORDERS, _ITEMS][:tables] + [_events(n) for n in range(4, tables + 1)]
    total_weight = sum(t.weight for t in specs)
    layout = []
    for t in specs:
        share = target_mb * 1024 * 1024 * t.weight / total_weight
        # InnoDB keeps ~8 MiB of extents per table beyond its rows once it is large.
        usable = share - min(_TABLE_OVERHEAD, share / 2)
        layout.append((t, max(1, math.ceil(usable / t.bytes_per_row))))
    return layout


def generate(
    conn: Any,
    database: str,
    target_mb: float,
    *,
    tables: int = 3,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, int]:
    """Fill ``database`` with about ``target_mb`` MiB of InnoDB data; return table -> rows.

    Creates the database if needed, drops any sample tables left there (other tables
    are kept) and creates ``customers``, ``orders``, ``order_items`` (the first
    ``tables`` of them) and ``events_4``... beyond three. The size is the sum of the
    ``.ibd`` files and lands within ~10% from about 64 MiB up; smaller targets
    overshoot since InnoDB grows a file past ~1 MiB straight to ~9 MiB.

    Row counts depend only on ``target_mb`` and ``tables``, and each row only on its
    id, so runs are reproducible (same rows, same ``CHECKSUM TABLE``). Needs the
    SEQUENCE engine (built into MariaDB >= 10.1). ``progress(table, done, total)`` is
    called after each chunk of ``chunk_rows`` rows. Raises UsageError for bad
    arguments and ToolError when the server rejects a statement.
    """
    if target_mb <= 0 or tables < 1 or chunk_rows < 1:
        raise UsageError("target_mb, tables and chunk_rows must be positive")
    if "`" in database or not database:
        raise UsageError(f"invalid database name: {database!r}")
    layout = _layout(target_mb, tables)
    counts = {t.name: rows for t, rows in layout}
    fmt = {"customers": counts.get("customers", 1), "orders": counts.get("orders", 1)}
    bound = log.bind(database=database, target_mb=target_mb)
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                " AND (TABLE_NAME IN ('customers', 'orders', 'order_items')"
                " OR TABLE_NAME REGEXP '^events_[0-9]+$')",
                (database,),
            )
            for (old,) in cur.fetchall():
                cur.execute(f"DROP TABLE `{database}`.`{old}`")
            for table, rows in layout:
                name = f"`{database}`.`{table.name}`"
                cur.execute(
                    f"CREATE TABLE {name} ({table.ddl}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                )
                select = table.select.format(**fmt)
                for first in range(1, rows + 1, chunk_rows):
                    last = min(rows, first + chunk_rows - 1)
                    cur.execute(
                        f"INSERT INTO {name} {select} FROM `{database}`.seq_{first}_to_{last}"
                    )
                    if not conn.get_autocommit():
                        conn.commit()
                    if progress is not None:
                        progress(table.name, last, rows)
    except pymysql.MySQLError as exc:
        raise ToolError(f"generating sample data in {database} failed: {exc}") from exc
    bound.info("sample_data_generated", rows=counts, seconds=round(time.monotonic() - started, 2))
    return counts


def table_sizes(conn: Any, database: str) -> dict[str, int]:
    """Return table -> on-disk size in bytes of its ``.ibd`` file (file-per-table).

    Raises ToolError on SQL errors.
    """
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT NAME, FILE_SIZE FROM information_schema.INNODB_SYS_TABLESPACES"
                " WHERE NAME LIKE %s",
                (database.replace("_", "\\_") + "/%",),
            )
            return {str(n).split("/", 1)[1]: int(s) for n, s in cur.fetchall()}
    except pymysql.MySQLError as exc:
        raise ToolError(f"reading table sizes of {database} failed: {exc}") from exc
