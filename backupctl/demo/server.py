"""Throwaway MariaDB servers for ``backupctl demo``, the tests and the benchmarks: a new
datadir (``mariadb-install-db``), TCP on a free loopback port, a backup user with the
grants backupctl needs, hooks that stop and start the server as a service manager would,
and table checksums to compare data before and after a restore."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket as socketlib
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import pymysql
import structlog

from backupctl.drivers.mariadb.connection import SYSTEM_SCHEMAS
from backupctl.drivers.mariadb.instance import MariaDBInstance
from backupctl.errors import ToolError, UsageError
from backupctl.proc import require_tool, tail_text

BACKUP_GRANTS = (
    "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICATION CLIENT, REPLICATION SLAVE, "
    "SELECT, SHOW VIEW, EVENT, TRIGGER"
)
_GRANTS_RE = re.compile(r"^[A-Za-z ,]+$")

log = structlog.get_logger()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayServer(MariaDBInstance):
    """A ``MariaDBInstance`` made for the occasion: created, filled, stopped, wiped."""

    #: the port was picked here: another is tried when it is taken meanwhile
    auto_port: bool = False

    @classmethod
    def create(
        cls,
        base_dir: Path,
        *,
        binlog: bool = True,
        networking: bool = True,
        buffer_pool: str = "128M",
        server_id: int = 1,
        extra_args: list[str] | None = None,
    ) -> Self:
        """Initialise a new datadir in ``base_dir/data``; return the (unstarted) instance.

        Socket, pid file and error log go to ``base_dir/run``. Raises UsageError when
        the datadir already holds a database, ToolError when ``mariadb-install-db`` is
        missing or fails.
        """
        base_dir = Path(base_dir).resolve()
        datadir = base_dir / "data"
        if (datadir / "mysql").exists():
            raise UsageError(f"{datadir} already holds a database; use for_datadir()")
        base_dir.mkdir(parents=True, exist_ok=True)
        # a private tmpdir: installs running at once in the shared /tmp fail now and then
        # ("Unknown table 'mysql.tmp_user_sys'", measured: 3 of 18 six at a time)
        tmpdir = base_dir / "install-tmp"
        tmpdir.mkdir(exist_ok=True)
        cmd = [
            require_tool("mariadb-install-db", "mariadb-server"),
            "--no-defaults",
            f"--datadir={datadir}",
            f"--tmpdir={tmpdir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        started = time.monotonic()
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"mariadb-install-db timed out for {datadir}") from exc
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        if res.returncode != 0:
            output = res.stdout + res.stderr
            # its advice fills the tail; the server's own errors come before it
            errors = [line for line in output.splitlines() if "ERROR" in line]
            raise ToolError(
                f"mariadb-install-db failed (exit {res.returncode}):\n"
                + "\n".join([*errors[:10], tail_text(output, 5)])
            )
        log.info(
            "mariadb_datadir_initialised",
            datadir=str(datadir),
            seconds=round(time.monotonic() - started, 2),
        )
        return cls.for_datadir(
            datadir,
            base_dir / "run",
            networking,
            binlog=binlog,
            buffer_pool=buffer_pool,
            server_id=server_id,
            extra_args=extra_args,
        )

    @classmethod
    def for_datadir(
        cls,
        datadir: Path,
        run_dir: Path,
        networking: bool = False,
        *,
        binlog: bool = False,
        buffer_pool: str = "128M",
        server_id: int = 1,
        port: int | None = None,
        extra_args: list[str] | None = None,
        run_as: str | None = None,
    ) -> Self:
        """As ``MariaDBInstance.for_datadir``; with networking and no port, a free one."""
        instance = super().for_datadir(
            datadir,
            run_dir,
            networking,
            binlog=binlog,
            buffer_pool=buffer_pool,
            server_id=server_id,
            port=(port or free_port()) if networking else None,
            extra_args=extra_args,
            run_as=run_as,
        )
        instance.auto_port = networking and port is None
        return instance

    def start(self, timeout: float = 60) -> None:
        """Start it; a port taken since it was picked is replaced by another free one."""
        for attempt in range(3):
            try:
                return super().start(timeout)
            except ToolError as exc:
                if not (self.auto_port and "already in use" in str(exc) and attempt < 2):
                    raise
                self.port = free_port()

    def write_service_hooks(self, directory: Path) -> tuple[Path, Path]:
        """Write ``stop.sh`` and ``start.sh`` that stop and start this server the way a
        service manager would (for restore hooks in tests and the demo); return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        admin = require_tool("mariadb-admin", "mariadb-client")
        command = " ".join(shlex.quote(arg) for arg in self.command())
        ping = (
            f"{admin} --no-defaults --socket={shlex.quote(str(self.socket))} -uroot "
            "ping >/dev/null 2>&1"
        )
        stop = directory / "stop.sh"
        stop.write_text(
            "#!/bin/sh\n"
            f"pid=$(cat {shlex.quote(str(self.pid_file))} 2>/dev/null) || exit 0\n"
            'kill -TERM "$pid" 2>/dev/null || exit 0\n'
            # gone, or a zombie its parent has not reaped yet
            "for _ in $(seq 600); do\n"
            '  grep -qsv ") Z " "/proc/$pid/stat" || exit 0\n'
            "  sleep 0.1\n"
            "done\n"
            'echo "mariadbd $pid did not stop" >&2; exit 1\n'
        )
        start = directory / "start.sh"
        start.write_text(
            "#!/bin/sh\n"
            "# idempotent, like `systemctl start`: a running server is left alone\n"
            f"{ping} && exit 0\n"
            f"mkdir -p {shlex.quote(str(self.socket.parent))}\n"
            f"setsid {command} </dev/null >>{shlex.quote(str(self.error_log))} 2>&1 &\n"
            "for _ in $(seq 1200); do\n"
            f"  {ping} && exit 0\n"
            "  sleep 0.1\n"
            "done\n"
            'echo "mariadbd did not start" >&2; exit 1\n'
        )
        for path in (stop, start):
            path.chmod(0o755)
        return stop, start

    def create_user(self, name: str, password: str, grants: str = BACKUP_GRANTS) -> None:
        """Create (or replace) ``name``@localhost and ``name``@127.0.0.1 with ``grants`` on *.*.

        The default grants cover mariabackup 10.11 (RELOAD, PROCESS, LOCK TABLES, BINLOG
        MONITOR), binlog streaming (REPLICATION SLAVE) and inventory queries (SELECT,
        SHOW VIEW, EVENT, TRIGGER). Raises UsageError for a malformed grant list,
        ToolError when the server rejects the statements.
        """
        if not _GRANTS_RE.match(grants):
            raise UsageError(f"invalid grant list: {grants!r}")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for host in ("localhost", "127.0.0.1"):
                    cur.execute(
                        "CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s", (name, host, password)
                    )
                    cur.execute(f"GRANT {grants} ON *.* TO %s@%s", (name, host))
        except pymysql.MySQLError as exc:
            raise ToolError(f"cannot create user {name}: {exc}") from exc
        finally:
            conn.close()

    def checkpoint(self, timeout: float = 60) -> None:
        """Flush InnoDB and wait for its checkpoint to catch up with what was written, as a
        server in service does all the time. A throwaway server idles with its checkpoint
        where it started, and mariabackup's ``to_lsn`` is the checkpoint at the start of a
        backup, so without this every incremental would hold the pages of everything.
        Background work (purge, the checkpoint record itself) moves the log on a few bytes,
        so the checkpoint may settle just short: wait for no dirty pages, then for the
        checkpoint to stop moving. Raises ToolError after ``timeout`` seconds."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
                written = _innodb_status(cur, "Log sequence number")
                deadline = time.monotonic() + timeout
                settled = None
                while True:
                    checkpoint = _innodb_status(cur, "Last checkpoint at")
                    clean = _innodb_status(cur, "Modified db pages") == 0
                    if checkpoint >= written or (clean and checkpoint == settled):
                        return
                    if time.monotonic() > deadline:
                        raise ToolError(
                            f"InnoDB did not checkpoint within {timeout:g}s (at {checkpoint},"
                            f" log at {written})"
                        )
                    settled = checkpoint if clean else None
                    time.sleep(1 if clean else 0.1)
        except pymysql.MySQLError as exc:
            raise ToolError(f"cannot wait for an InnoDB checkpoint: {exc}") from exc
        finally:
            conn.close()


def _innodb_status(cur: Any, label: str) -> int:
    """A number from SHOW ENGINE INNODB STATUS (e.g. "Log sequence number")."""
    cur.execute("SHOW ENGINE INNODB STATUS")
    text = str(cur.fetchone()[2])
    for line in text.splitlines():
        if line.startswith(label):
            return int(line.split()[-1])
    raise ToolError(f"SHOW ENGINE INNODB STATUS has no {label!r} line")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def checksum_tables(conn: Any, databases: list[str] | None = None) -> dict[str, int | None]:
    """Return ``{"db.table": CHECKSUM TABLE value}`` for every base table of user databases.

    System schemas are left out; ``databases`` restricts the result. A value is None
    when the server could not checksum the table. Raises ToolError on SQL errors.
    """
    sql = (
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
        " WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN %s"
    )
    params: list[Any] = [SYSTEM_SCHEMAS]
    if databases is not None:
        if not databases:
            return {}
        sql += " AND TABLE_SCHEMA IN %s"
        params.append(tuple(databases))
    result: dict[str, int | None] = {}
    try:
        with conn.cursor() as cur:
            cur.execute(sql + " ORDER BY TABLE_SCHEMA, TABLE_NAME", params)
            pairs = [(str(s), str(t)) for s, t in cur.fetchall()]
            for i in range(0, len(pairs), 50):
                quoted = [f"{_quote(s)}.{_quote(t)}" for s, t in pairs[i : i + 50]]
                cur.execute("CHECKSUM TABLE " + ", ".join(quoted))
                result.update({str(t): None if v is None else int(v) for t, v in cur.fetchall()})
    except pymysql.MySQLError as exc:
        raise ToolError(f"CHECKSUM TABLE failed: {exc}") from exc
    return {f"{s}.{t}": result.get(f"{s}.{t}") for s, t in pairs}
