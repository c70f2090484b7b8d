"""The verification levels of a restored MariaDB server: what each runs and what fails it.

A scripted connection stands in for the recovery instance; the real server runs these
checks in tests/integration/test_restore.py and test_drills.py."""

from __future__ import annotations

import threading
from typing import Any

import pymysql
import pytest

from backupctl.drivers.mariadb import verification
from backupctl.drivers.mariadb.verification import check_row_counts, check_tables, describe


class Server:
    """Answers the statements verification sends, from ``rows``/``estimates``/``status``;
    remembers every statement (from every connection)."""

    def __init__(
        self, rows: dict[str, int], estimates: dict[str, int], bad: str = "", broken: str = ""
    ) -> None:
        self.rows, self.estimates, self.bad, self.broken = rows, estimates, bad, broken
        self.sent: list[str] = []
        self.connections = 0
        self.lock = threading.Lock()

    def connect(self) -> Any:
        with self.lock:
            self.connections += 1
        return _Conn(self)


class _Conn:
    def __init__(self, server: Server) -> None:
        self.server = server

    def cursor(self) -> _Cursor:
        return _Cursor(self.server)

    def close(self) -> None:
        pass


class _Cursor:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.result: list[Any] = [()]

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, args: Any = None) -> None:
        with self.server.lock:
            self.server.sent.append(sql)
        if self.server.broken and self.server.broken in sql.replace("`", ""):
            raise pymysql.err.InternalError(1712, "Index orders is corrupted")
        table = sql.rsplit(" FROM ", 1)[-1].replace("`", "")
        if sql.startswith("CHECK TABLE"):
            name = sql.split()[2].replace("`", "")
            verdict = "Corrupt" if name == self.server.bad else "OK"
            self.result = [(name, "check", "status", verdict)]
        elif sql.startswith("SELECT COUNT(*)"):
            self.result = [(self.server.rows[table],)]
        elif "information_schema" in sql and "table_rows" in sql:
            self.result = [(*t.split("."), n) for t, n in self.server.estimates.items()]
        else:
            self.result = [()]

    def fetchall(self) -> list[Any]:
        return self.result

    def fetchone(self) -> Any:
        return self.result[0]


EXPECTED = {"shop.orders": 100_000, "shop.customers": 20_000}


def test_each_level_says_what_it_checks() -> None:
    assert "CHECK TABLE" not in describe("quick")
    assert "row estimates" in describe("quick")
    assert "CHECK TABLE ... QUICK" in describe("standard")
    assert describe("full") == (
        "CHECK TABLE ... EXTENDED on every table, tables and exact row counts against the manifest"
    )
    assert "after the binlog replay" in describe("standard", exact=False)


def test_row_estimates_come_from_fresh_statistics_and_fail_when_far_off() -> None:
    server = Server(rows={}, estimates={"shop.orders": 98_000, "shop.customers": 3})
    result = check_row_counts(server.connect, EXPECTED, set(EXPECTED), parallel=2, exact=False)
    assert not result.passed and result.name == "row-estimates"
    assert "shop.customers: 3 rows (estimated), about 20000" in result.detail
    assert "shop.orders" not in result.detail
    # statistics refreshed per table, out of the binlog, never by a scan, before reading them
    analyzed = [s for s in server.sent if s.startswith("ANALYZE LOCAL TABLE")]
    assert sorted(analyzed) == [
        "ANALYZE LOCAL TABLE `shop`.`customers`",
        "ANALYZE LOCAL TABLE `shop`.`orders`",
    ]
    assert "SET SESSION use_stat_tables = 'NEVER'" in server.sent
    assert not any(s.startswith("SELECT COUNT(*)") for s in server.sent)


def test_exact_counts_scan_every_table_over_the_connections_given() -> None:
    server = Server(rows={"shop.orders": 99_990, "shop.customers": 20_001}, estimates={})
    result = check_row_counts(server.connect, EXPECTED, set(EXPECTED), parallel=2, exact=True)
    assert result.passed and result.name == "row-counts"
    assert result.detail.startswith("119991 rows, consistent with the manifest")
    assert server.connections == 2


@pytest.mark.parametrize("option", ["QUICK", "EXTENDED"])
def test_check_table_names_the_corrupt_table(option: str) -> None:
    server = Server({}, {}, bad="shop.orders")
    result = check_tables(server.connect, set(EXPECTED), parallel=3, option=option)
    assert not result.passed and result.detail == "shop.orders: Corrupt"
    assert sorted(s for s in server.sent if s.startswith("CHECK")) == [
        f"CHECK TABLE `shop`.`customers` {option}",
        f"CHECK TABLE `shop`.`orders` {option}",
    ]
    assert check_tables(Server({}, {}).connect, set(EXPECTED), 2, option).passed


def test_lanes_keep_the_order_of_the_tables() -> None:
    names = [f"db.t{i}" for i in range(17)]
    got = verification._in_lanes(Server({}, {}).connect, names, 4, lambda _c, n: n.upper())
    assert got == [n.upper() for n in names]


@pytest.mark.parametrize("exact", [True, False])
def test_a_table_the_server_cannot_read_fails_the_check_naming_it(exact: bool) -> None:
    server = Server({"shop.customers": 20_000}, {"shop.customers": 20_000}, broken="shop.orders")
    checked = check_tables(server.connect, set(EXPECTED), 2, "EXTENDED")
    assert not checked.passed and checked.detail == "shop.orders: Index orders is corrupted"
    counted = check_row_counts(server.connect, EXPECTED, set(EXPECTED), 2, exact=exact)
    assert not counted.passed and counted.detail == "shop.orders: Index orders is corrupted"
