"""Checks on a restored server: CHECK TABLE, the manifest's tables and rows, policy assertions."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeAlias

import pymysql

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.mariadb.connection import SYSTEM_SCHEMAS
from backupctl.drivers.mariadb.details import FullDetails
from backupctl.policy.mariadb import EXPECT_RE, SqlCheck

Conn: TypeAlias = "pymysql.connections.Connection[Any]"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def restored_tables(conn: Conn) -> set[str]:
    """Every user base table as ``db.table``."""
    placeholders = ",".join(["%s"] * len(SYSTEM_SCHEMAS))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE "
            f"table_type = 'BASE TABLE' AND table_schema NOT IN ({placeholders})",
            SYSTEM_SCHEMAS,
        )
        return {f"{schema}.{table}" for schema, table in cur.fetchall()}


def manifest_tables(manifest: Manifest) -> dict[str, int]:
    """``db.table`` -> row estimate, from the manifest."""
    return {
        f"{db.name}.{t.name}": t.rows_estimate
        for db in FullDetails.of(manifest).databases
        for t in db.tables
    }


def _check_one(conn: Conn, table: str) -> str | None:
    schema, name = table.split(".", 1)
    with conn.cursor() as cur:
        cur.execute(f"CHECK TABLE {_q(schema)}.{_q(name)}")
        rows = cur.fetchall()
    status = [r for r in rows if r[2] == "status"]
    if status and status[-1][3] == "OK":
        return None
    return f"{table}: {rows[-1][3] if rows else 'no answer'}"


def check_tables(connect: Callable[[], Conn], tables: set[str], parallel: int = 1) -> CheckResult:
    """CHECK TABLE every table, spread over ``parallel`` connections."""
    ordered = sorted(tables)
    lanes = [ordered[i::parallel] for i in range(max(1, parallel))]

    def lane(names: list[str]) -> list[str]:
        conn = connect()
        try:
            return [bad for t in names if (bad := _check_one(conn, t)) is not None]
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        bad = [item for result in pool.map(lane, lanes) for item in result]
    if bad:
        return CheckResult("check-table", False, "; ".join(bad[:10]))
    return CheckResult("check-table", True, f"{len(tables)} table(s) OK")


def check_manifest_tables(found: set[str], expected: dict[str, int]) -> CheckResult:
    missing, extra = sorted(set(expected) - found), sorted(found - set(expected))
    if missing or extra:
        detail = f"missing: {', '.join(missing) or '-'}; unexpected: {', '.join(extra) or '-'}"
        return CheckResult("tables-match-manifest", False, detail)
    return CheckResult("tables-match-manifest", True, f"all {len(found)} table(s) of the manifest")


def plausible(count: int, estimate: int) -> bool:
    """InnoDB's estimates are rough: accept a factor of 4 either way, and small tables."""
    return estimate * 0.25 - 100 <= count <= estimate * 4 + 1000


def check_row_counts(conn: Conn, expected: dict[str, int], found: set[str]) -> CheckResult:
    off = []
    total = 0
    with conn.cursor() as cur:
        for table in sorted(found & set(expected)):
            schema, name = table.split(".", 1)
            cur.execute(f"SELECT COUNT(*) FROM {_q(schema)}.{_q(name)}")
            count = int(cur.fetchone()[0])
            total += count
            if not plausible(count, expected[table]):
                off.append(f"{table}: {count} rows, about {expected[table]} at backup time")
    if off:
        return CheckResult("row-counts", False, "; ".join(off[:10]))
    return CheckResult("row-counts", True, f"{total} rows, consistent with the manifest")


def compare(value: Any, expect: str) -> bool:
    """Evaluate ``value <op> operand`` for an ``expect`` like "> 0" or "= 'x'"."""
    match = EXPECT_RE.match(expect)
    assert match is not None  # validated with the policy
    op, raw = match.group(1), match.group(2).strip("'\"")
    left: Any = value
    right: Any = raw
    if isinstance(value, (int, float, Decimal)):
        left, right = Decimal(str(value)), Decimal(raw)
    else:
        left = "" if value is None else str(value)
    outcomes: dict[str, bool] = {
        "=": left == right,
        "==": left == right,
        "!=": left != right,
        ">": left > right,
        "<": left < right,
        ">=": left >= right,
        "<=": left <= right,
    }
    return outcomes[op]


def check_assertion(conn: Conn, check: SqlCheck) -> CheckResult:
    name = f"sql: {check.sql}"
    try:
        with conn.cursor() as cur:
            cur.execute(check.sql)
            row = cur.fetchone()
    except pymysql.MySQLError as exc:
        return CheckResult(name, False, f"query failed: {exc.args[-1]}")
    value = row[0] if row else None
    try:
        passed = compare(value, check.expect)
    except (ArithmeticError, ValueError, TypeError):
        passed = False
    return CheckResult(name, passed, f"got {value!r}, expected {check.expect}")


def verify_restored(
    connect: Callable[[], Conn],
    manifest: Manifest,
    assertions: list[SqlCheck],
    parallel: int = 1,
    exact: bool = True,
) -> list[CheckResult]:
    """Every check of a restored server, in a stable order; CHECK TABLE on ``parallel``
    connections, the other checks on one."""
    conn = connect()
    try:
        found = restored_tables(conn)
        expected = manifest_tables(manifest)
        checks = [check_tables(connect, found, parallel)]
        if exact:
            checks += [
                check_manifest_tables(found, expected),
                check_row_counts(conn, expected, found),
            ]
        else:  # binlogs replayed after the backup: tables and rows legitimately differ
            detail = f"{len(found)} table(s) after replaying binlogs"
            checks.append(CheckResult("tables-after-replay", bool(found), detail))
        checks += [check_assertion(conn, a) for a in assertions]
    finally:
        conn.close()
    return checks
