"""Private, throwaway ``mariadbd`` instances: tests, ``backupctl demo``, recovery instances.

An instance owns a datadir and a private run directory (socket, pid file, error log).
It always starts with ``--no-defaults``, so no ``/etc/mysql`` option file leaks in.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket as socketlib
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pymysql
import structlog

from backupctl.drivers.mariadb.connection import SYSTEM_SCHEMAS
from backupctl.errors import ToolError, UsageError
from backupctl.proc import require_tool, tail_text

BACKUP_GRANTS = (
    "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICATION CLIENT, REPLICATION SLAVE, "
    "SELECT, SHOW VIEW, EVENT, TRIGGER"
)
MAX_SOCKET_PATH = 100  # sun_path holds 107 bytes plus NUL; keep a margin
_GRANTS_RE = re.compile(r"^[A-Za-z ,]+$")

log = structlog.get_logger()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


@dataclass
class MariaDBInstance:
    """One private ``mariadbd``: a datadir, a private socket, optionally a loopback port."""

    datadir: Path
    socket: Path
    port: int | None  # None: --skip-networking
    pid_file: Path
    error_log: Path
    binlog: bool = True
    server_id: int = 1
    buffer_pool: str = "128M"
    extra_args: list[str] = field(default_factory=list)
    run_as: str | None = None  # OS user for --user; root when we run as root
    own_socket_dir: bool = field(default=False, repr=False)  # short temp dir, removed on stop
    auto_port: bool = field(default=False, repr=False)  # may pick another port if taken
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

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
        cmd = [
            require_tool("mariadb-install-db", "mariadb-server"),
            "--no-defaults",
            f"--datadir={datadir}",
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
        if res.returncode != 0:
            raise ToolError(
                f"mariadb-install-db failed (exit {res.returncode}):\n"
                f"{tail_text(res.stdout + res.stderr)}"
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
        """Return an unstarted instance on an existing (e.g. restored) datadir.

        Socket, pid file and error log go to ``run_dir`` (mode 0700); the socket goes
        to a short private temp dir when ``run_dir`` is too long for a unix socket.
        ``networking=False`` means ``--skip-networking``; otherwise ``port`` or a free
        one. ``run_as`` sets ``--user`` (e.g. ``mysql`` when the datadir must keep its
        ownership). Raises UsageError if ``datadir`` is not a directory.
        """
        datadir, run_dir = Path(datadir).resolve(), Path(run_dir).resolve()
        if not datadir.is_dir():
            raise UsageError(f"datadir {datadir} does not exist")
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sock_dir, own = run_dir, False
        if len(os.fsencode(run_dir / "mysqld.sock")) > MAX_SOCKET_PATH:
            sock_dir, own = Path(tempfile.mkdtemp(prefix="bctl-", dir="/tmp")), True
        if run_as and os.geteuid() == 0:
            for d in {run_dir, sock_dir}:
                shutil.chown(d, run_as)
        return cls(
            datadir=datadir,
            socket=sock_dir / "mysqld.sock",
            port=(port or free_port()) if networking else None,
            pid_file=run_dir / "mysqld.pid",
            error_log=run_dir / "error.log",
            binlog=binlog,
            server_id=server_id,
            buffer_pool=buffer_pool,
            extra_args=list(extra_args or []),
            run_as=run_as,
            own_socket_dir=own,
            auto_port=networking and port is None,
        )

    def command(self) -> list[str]:
        """Return the ``mariadbd`` argv that :meth:`start` runs. Raises ToolError."""
        cmd = [
            require_tool("mariadbd", "mariadb-server"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.error_log}",
            f"--server-id={self.server_id}",
            f"--innodb-buffer-pool-size={self.buffer_pool}",
            "--skip-name-resolve",
        ]
        if self.port is None:
            cmd.append("--skip-networking")
        else:
            cmd += [f"--port={self.port}", "--bind-address=127.0.0.1"]
        if self.binlog:
            cmd.append("--log-bin=mysql-bin")  # relative: <datadir>/mysql-bin.NNNNNN
        user = self.run_as or ("root" if os.geteuid() == 0 else None)
        if user:
            cmd.append(f"--user={user}")
        return cmd + self.extra_args

    def start(self, timeout: float = 60) -> None:
        """Start ``mariadbd`` and wait until it accepts connections on its socket.

        A no-op when already running. Raises ToolError with the tail of the error log
        when the server exits or is not up within ``timeout`` seconds (it is killed
        then), or when the binary is missing.
        """
        if self.is_running():
            return
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except ToolError as exc:
                if not (self.auto_port and "already in use" in str(exc) and attempt < 2):
                    raise
                self.port = free_port()

    def _start_once(self, timeout: float) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        cmd, started = self.command(), time.monotonic()
        with open(self.error_log, "ab") as err:  # catches what it says before --log-error
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True
            )
        self._proc = proc
        while True:
            if proc.poll() is not None:
                self._proc = None
                raise ToolError(
                    f"mariadbd exited with {proc.returncode} while starting:\n"
                    f"{self.log_tail(offset)}"
                )
            try:
                self.connect(connect_timeout=2).close()
                break
            except ToolError:
                if time.monotonic() - started > timeout:
                    self._signal_and_wait(signal.SIGKILL, 30)
                    self._proc = None
                    raise ToolError(
                        f"mariadbd did not accept connections within {timeout}s:\n"
                        f"{self.log_tail(offset)}"
                    ) from None
                time.sleep(0.1)
        log.info(
            "mariadb_started",
            datadir=str(self.datadir),
            socket=str(self.socket),
            port=self.port,
            pid=proc.pid,
            seconds=round(time.monotonic() - started, 2),
        )

    def stop(self, timeout: float = 60) -> None:
        """Shut down cleanly: SIGTERM, then SIGKILL only after ``timeout`` s. Idempotent."""
        pid = self.pid()
        if pid is not None:
            clean = self._signal_and_wait(signal.SIGTERM, timeout)
            if not clean:
                self._signal_and_wait(signal.SIGKILL, 30)
            log.info("mariadb_stopped", datadir=str(self.datadir), pid=pid, clean=clean)
        self._proc = None
        if self.own_socket_dir:
            shutil.rmtree(self.socket.parent, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server (simulates a crash; the next start runs crash recovery)."""
        pid = self.pid()
        if pid is not None:
            self._signal_and_wait(signal.SIGKILL, 30)
            log.info("mariadb_killed", datadir=str(self.datadir), pid=pid)
        self._proc = None

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> bool:
        """Send ``sig`` to the server and wait for it to exit; return whether it did."""
        pid = self.pid()
        if pid is None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if self._proc is not None:  # our child: wait() also reaps it
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def pid(self) -> int | None:
        """Return the pid of the running server (our child, else from the pid file) or None."""
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc.pid
            self._proc = None  # it exited; something else may have started it again
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        is_server = b"mariadbd" in cmdline or b"mysqld" in cmdline
        return pid if is_server and _alive(pid) else None

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

    def is_running(self) -> bool:
        """Return True while the server process of this instance is alive."""
        return self.pid() is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def connect(
        self,
        user: str = "root",
        password: str | None = None,
        database: str | None = None,
        *,
        connect_timeout: float = 10,
    ) -> pymysql.connections.Connection:
        """Return an autocommit pymysql connection over the socket. Raises ToolError."""
        try:
            return pymysql.connect(
                unix_socket=str(self.socket),
                user=user,
                password=password or "",
                database=database,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=connect_timeout,
            )
        except (pymysql.MySQLError, OSError) as exc:
            raise ToolError(f"cannot connect to {self.socket} as {user}: {exc}") from exc

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

    def server_version(self) -> str:
        """Return ``VERSION()`` of the running server. Raises ToolError."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                return str(cur.fetchone()[0])
        finally:
            conn.close()

    def log_tail(self, offset: int = 0, lines: int = 20) -> str:
        """Return the last ``lines`` lines the error log got after byte ``offset``."""
        try:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                return tail_text(f.read().decode(errors="replace"), lines)
        except OSError:
            return "(no error log)"


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
