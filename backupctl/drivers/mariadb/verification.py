"""Checks on a restored server: CHECK TABLE, the manifest's tables and rows, policy assertions."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar

import pymysql

from backupctl.catalog.manifest import Manifest
from backupctl.checks import CheckResult
from backupctl.drivers.mariadb.connection import SYSTEM_SCHEMAS
from backupctl.drivers.mariadb.details import FullDetails
from backupctl.policy.mariadb import EXPECT_RE, SqlCheck, VerifyLevel

Conn: TypeAlias = "pymysql.connections.Connection[Any]"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def restored_tables(conn: Conn) -> set[str]:
    """Every user base table as ``db.table``."""
    return set(_row_estimates(conn))


def manifest_tables(manifest: Manifest) -> dict[str, int]:
    """``db.table`` -> row estimate, from the manifest."""
    return {
        f"{db.name}.{t.name}": t.rows_estimate
        for db in FullDetails.of(manifest).databases
        for t in db.tables
    }


#: what CHECK TABLE runs with at each level; quick runs none
CHECK_OPTION: dict[VerifyLevel, str | None] = {
    "quick": None,
    "standard": "QUICK",
    "full": "EXTENDED",
}


def describe(level: VerifyLevel, exact: bool = True) -> str:
    """What ``verify_restored`` checks at ``level``, in a few words (for plans)."""
    option = CHECK_OPTION[level]
    parts = [f"CHECK TABLE ... {option} on every table"] if option else []
    if not exact:
        parts.append("tables present after the binlog replay")
    elif level == "full":
        parts.append("tables and exact row counts against the manifest")
    else:
        parts.append("tables and row estimates against the manifest")
    return ", ".join(parts)


T = TypeVar("T")


def _in_lanes(
    connect: Callable[[], Conn], names: list[str], parallel: int, one: Callable[[Conn, str], T]
) -> list[T]:
    """``one(conn, name)`` for every name, spread over ``parallel`` connections, in the
    order of ``names``."""
    lanes = [names[i :: max(1, parallel)] for i in range(max(1, parallel))]

    def lane(part: list[str]) -> list[T]:
        conn = connect()
        try:
            return [one(conn, name) for name in part]
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        done = list(pool.map(lane, lanes))
    by_name = {
        n: r for part, got in zip(lanes, done, strict=True) for n, r in zip(part, got, strict=True)
    }
    return [by_name[n] for n in names]


def _said(exc: pymysql.MySQLError) -> str:
    """What the server said, as a check's detail (e.g. "Index orders is corrupted")."""
    return str(exc.args[-1]) if exc.args else type(exc).__name__


def _check_one(conn: Conn, table: str, option: str) -> str | None:
    schema, name = table.split(".", 1)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CHECK TABLE {_q(schema)}.{_q(name)} {option}")
            rows = cur.fetchall()
    except pymysql.MySQLError as exc:  # a damaged page can fail the statement itself
        return f"{table}: {_said(exc)}"
    status = [r for r in rows if r[2] == "status"]
    if status and status[-1][3] == "OK":
        return None
    return f"{table}: {rows[-1][3] if rows else 'no answer'}"


def check_tables(
    connect: Callable[[], Conn], tables: set[str], parallel: int = 1, option: str = "QUICK"
) -> CheckResult:
    """CHECK TABLE ... ``option`` every table, spread over ``parallel`` connections."""
    started = time.monotonic()
    found = _in_lanes(connect, sorted(tables), parallel, lambda c, t: _check_one(c, t, option))
    bad = [item for item in found if item is not None]
    if bad:
        return CheckResult("check-table", False, "; ".join(bad[:10]))
    took = time.monotonic() - started
    detail = (
        f"{len(tables)} table(s) OK (CHECK TABLE {option}, {parallel} connection(s), {took:.1f} s)"
    )
    return CheckResult("check-table", True, detail)


def check_manifest_tables(found: set[str], expected: dict[str, int]) -> CheckResult:
    missing, extra = sorted(set(expected) - found), sorted(found - set(expected))
    if missing or extra:
        detail = f"missing: {', '.join(missing) or '-'}; unexpected: {', '.join(extra) or '-'}"
        return CheckResult("tables-match-manifest", False, detail)
    return CheckResult("tables-match-manifest", True, f"all {len(found)} table(s) of the manifest")


def plausible(count: int, estimate: int) -> bool:
    """InnoDB's estimates are rough: accept a factor of 4 either way, and small tables."""
    return estimate * 0.25 - 100 <= count <= estimate * 4 + 1000


def _count(conn: Conn, table: str) -> int | str:
    """The table's rows, or what the server said when it could not count them."""
    schema, name = table.split(".", 1)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {_q(schema)}.{_q(name)}")
            return int(cur.fetchone()[0])
    except pymysql.MySQLError as exc:
        return _said(exc)


def _analyze(conn: Conn, table: str) -> str | None:
    """Fresh InnoDB statistics for ``table``: a restored server starts with the persistent
    ones, which can lag the data by a whole load. ANALYZE samples a few pages per index
    (not a scan: the same cost at 1 GB and 1 TB); NEVER keeps it from collecting the
    engine-independent statistics, which would scan; LOCAL keeps it out of the binlog."""
    schema, name = table.split(".", 1)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION use_stat_tables = 'NEVER'")
            cur.execute(f"ANALYZE LOCAL TABLE {_q(schema)}.{_q(name)}")
            cur.fetchall()
    except pymysql.MySQLError as exc:
        return _said(exc)
    return None


def _row_estimates(conn: Conn) -> dict[str, int]:
    """Every user base table as ``db.table`` -> the server's row estimate."""
    placeholders = ",".join(["%s"] * len(SYSTEM_SCHEMAS))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name, table_rows FROM information_schema.tables WHERE "
            f"table_type = 'BASE TABLE' AND table_schema NOT IN ({placeholders})",
            SYSTEM_SCHEMAS,
        )
        return {f"{schema}.{table}": int(rows or 0) for schema, table, rows in cur.fetchall()}


def check_row_counts(
    connect: Callable[[], Conn],
    expected: dict[str, int],
    found: set[str],
    parallel: int = 1,
    exact: bool = True,
) -> CheckResult:
    """Each table's rows (``exact``: COUNT(*) over ``parallel`` connections; otherwise
    InnoDB's estimates after ANALYZE, at no scan) plausible against the manifest's
    estimates."""
    started = time.monotonic()
    tables = sorted(found & set(expected))
    name, what = ("row-counts", "rows") if exact else ("row-estimates", "rows (estimated)")
    if exact:
        got = dict(zip(tables, _in_lanes(connect, tables, parallel, _count), strict=True))
        errors = {t: said for t, said in got.items() if isinstance(said, str)}
        counts = {t: n for t, n in got.items() if isinstance(n, int)}
    else:
        said = _in_lanes(connect, tables, parallel, _analyze)
        errors = {t: e for t, e in zip(tables, said, strict=True) if e is not None}
        conn = connect()
        try:
            estimates = _row_estimates(conn)
        finally:
            conn.close()
        counts = {t: estimates.get(t, 0) for t in tables if t not in errors}
    off = [f"{t}: {errors[t]}" for t in tables if t in errors]
    off += [
        f"{t}: {counts[t]} {what}, about {expected[t]} at backup time"
        for t in tables
        if t in counts and not plausible(counts[t], expected[t])
    ]
    if off:
        return CheckResult(name, False, "; ".join(off[:10]))
    took = time.monotonic() - started
    total = sum(counts.values())
    return CheckResult(name, True, f"{total} {what}, consistent with the manifest ({took:.1f} s)")


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
    level: VerifyLevel = "standard",
    parallel: int = 1,
    exact: bool = True,
) -> list[CheckResult]:
    """Every check of ``level`` on a restored server, in a stable order (``DESCRIPTION``
    says what each level runs); table scans on ``parallel`` connections. ``exact=False``
    after a binlog replay: tables and rows then legitimately differ from the manifest."""
    conn = connect()
    try:
        found = restored_tables(conn)
        expected = manifest_tables(manifest)
        checks = []
        option = CHECK_OPTION[level]
        if option is not None:
            checks.append(check_tables(connect, found, parallel, option))
        if exact:
            checks += [
                check_manifest_tables(found, expected),
                check_row_counts(connect, expected, found, parallel, exact=level == "full"),
            ]
        else:
            detail = f"{len(found)} table(s) after replaying binlogs"
            checks.append(CheckResult("tables-after-replay", bool(found), detail))
        checks += [check_assertion(conn, a) for a in assertions]
    finally:
        conn.close()
    return checks
