"""Private, throwaway ``mariadbd`` instances: tests, ``backupctl demo``, recovery instances.

An instance owns a datadir and a private run directory (socket, pid file, error log).
It is always started with ``--no-defaults`` so no ``/etc/mysql`` option file leaks in.
"""

from __future__ import annotations

import contextlib
import os
import re
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

from backupctl.errors import ToolError, UsageError

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
BACKUP_GRANTS = (
    "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICATION CLIENT, REPLICATION SLAVE, "
    "SELECT, SHOW VIEW, EVENT, TRIGGER"
)
_PACKAGES = {
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariabackup": "mariadb-backup",
    "mariadb-backup": "mariadb-backup",
    "mbstream": "mariadb-backup",
    "mariadb": "mariadb-client",
    "mariadb-binlog": "mariadb-client",
    "mariadb-admin": "mariadb-client",
}
_MAX_SOCKET_BYTES = 100  # sun_path holds 107 bytes plus NUL; keep a margin
_GRANTS_RE = re.compile(r"^[A-Za-z ,]+$")

log = structlog.get_logger()


def find_binary(name: str) -> str:
    """Return the absolute path of a MariaDB tool, also looking in the sbin directories.

    Raises ToolError naming the Debian package to install when it is missing.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    path = shutil.which(name, path=search)
    if path is None:
        package = _PACKAGES.get(name, "mariadb-server")
        raise ToolError(f"{name} not found; install the Debian package {package}")
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_dir(wanted: Path) -> tuple[Path, bool]:
    """Return (directory for the socket, whether it is a temp dir we own)."""
    wanted.mkdir(parents=True, exist_ok=True, mode=0o700)
    if len(os.fsencode(wanted.resolve() / "mysqld.sock")) <= _MAX_SOCKET_BYTES:
        return wanted.resolve(), False
    return Path(tempfile.mkdtemp(prefix="bctl-", dir="/tmp")), True


@dataclass
class MariaDBInstance:
    """One private ``mariadbd``: datadir, private socket, optional loopback port."""

    datadir: Path
    socket: Path
    port: int | None  # None: --skip-networking
    pid_file: Path
    error_log: Path
    binlog: bool = True
    server_id: int = 1
    buffer_pool: str = "128M"
    extra_args: list[str] = field(default_factory=list)
    run_as: str | None = None  # OS user for --user; default root when euid is 0
    _own_socket_dir: bool = field(default=False, repr=False)
    _auto_port: bool = field(default=False, repr=False)
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
        """Initialise a new datadir at ``base_dir/data`` and return an unstarted instance.

        Raises UsageError if the datadir already holds a database, ToolError if
        ``mariadb-install-db`` is missing or fails.
        """
        base_dir = Path(base_dir).resolve()
        datadir = base_dir / "data"
        if (datadir / "mysql").exists():
            raise UsageError(f"{datadir} already holds a database; use for_datadir()")
        base_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            find_binary("mariadb-install-db"),
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
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-20:])
            raise ToolError(f"mariadb-install-db failed ({res.returncode}):\n{tail}")
        log.info(
            "mariadb_datadir_initialised",
            datadir=str(datadir),
            seconds=round(time.monotonic() - started, 2),
        )
        inst = cls.for_datadir(
            datadir,
            base_dir / "run",
            networking=networking,
            binlog=binlog,
            buffer_pool=buffer_pool,
            server_id=server_id,
            extra_args=extra_args,
        )
        return inst

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

        Socket, pid file and error log go to ``run_dir`` (the socket to a short temp
        directory when ``run_dir`` is too long for a unix socket path). With
        ``networking=False`` the server gets ``--skip-networking``. Raises UsageError
        if ``datadir`` does not exist.
        """
        datadir = Path(datadir).resolve()
        if not datadir.is_dir():
            raise UsageError(f"datadir {datadir} does not exist")
        run_dir = Path(run_dir).resolve()
        sock_dir, own = _run_dir(run_dir)
        if run_as and os.geteuid() == 0:
            shutil.chown(run_dir, run_as)
            shutil.chown(sock_dir, run_as)
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
            _own_socket_dir=own,
            _auto_port=networking and port is None,
        )

    # -- lifecycle -------------------------------------------------------------------

    def command(self) -> list[str]:
        """Return the full ``mariadbd`` argv used by :meth:`start`. Raises ToolError."""
        cmd = [
            find_binary("mariadbd"),
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
        """Start ``mariadbd`` and wait until it accepts connections on the socket.

        A no-op when already running. Raises ToolError (with the tail of the error
        log) when the server dies, does not come up within ``timeout`` seconds, or
        the binary is missing.
        """
        if self.is_running():
            return
        for attempt in range(3):
            try:
                self._start_once(timeout)
                return
            except ToolError as exc:
                if not (self._auto_port and "already in use" in str(exc) and attempt < 2):
                    raise
                self.port = free_port()

    def _start_once(self, timeout: float) -> None:
        bound = log.bind(datadir=str(self.datadir), socket=str(self.socket), port=self.port)
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        cmd = self.command()
        started = time.monotonic()
        with open(self.error_log, "ab") as err:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True
            )
        deadline = started + timeout
        while True:
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                raise ToolError(
                    f"mariadbd exited with {code} while starting:\n{self.log_tail(offset)}"
                )
            try:
                self.connect(connect_timeout=2).close()
                break
            except ToolError:
                if time.monotonic() > deadline:
                    self._signal_and_wait(signal.SIGKILL, 10)
                    raise ToolError(
                        f"mariadbd did not accept connections within {timeout}s:\n"
                        f"{self.log_tail(offset)}"
                    ) from None
                time.sleep(0.1)
        bound.info(
            "mariadb_started", pid=self._proc.pid, seconds=round(time.monotonic() - started, 2)
        )

    def stop(self, timeout: float = 60) -> None:
        """Shut down cleanly (SIGTERM; SIGKILL only after ``timeout`` seconds). Idempotent."""
        pid = self.pid()
        if pid is not None:
            clean = self._signal_and_wait(signal.SIGTERM, timeout)
            if not clean:
                log.warning("mariadb_stop_timeout_killed", datadir=str(self.datadir), pid=pid)
                self._signal_and_wait(signal.SIGKILL, 30)
            log.info("mariadb_stopped", datadir=str(self.datadir), pid=pid, clean=clean)
        self._proc = None
        if self._own_socket_dir:
            shutil.rmtree(self.socket.parent, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server (simulates a crash; the next start runs crash recovery)."""
        pid = self.pid()
        if pid is not None:
            self._signal_and_wait(signal.SIGKILL, 30)
            log.info("mariadb_killed", datadir=str(self.datadir), pid=pid)
        self._proc = None

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> bool:
        """Send ``sig`` and wait for the process to exit; return whether it did."""
        pid = self.pid()
        if pid is None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if self._proc is not None and self._proc.pid == pid:
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
        """Return the pid of the running server (ours, or from the pid file), else None."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if (b"mariadbd" in cmdline or b"mysqld" in cmdline) and _alive(pid) else None

    def is_running(self) -> bool:
        """Return True when the server process for this instance is alive."""
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

    # -- SQL -------------------------------------------------------------------------

    def connect(
        self,
        user: str = "root",
        password: str | None = None,
        database: str | None = None,
        *,
        connect_timeout: float = 10,
    ) -> pymysql.connections.Connection[Any]:
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
        SHOW VIEW, EVENT, TRIGGER). Raises UsageError for a malformed grant list and
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
        """Return ``SELECT VERSION()`` of the running server. Raises ToolError."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                return str(cur.fetchone()[0])
        finally:
            conn.close()

    def log_tail(self, offset: int = 0, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the error log written after byte ``offset``."""
        try:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no error log)"
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def checksum_tables(conn: Any, databases: list[str] | None = None) -> dict[str, int | None]:
    """Return ``{"db.table": CHECKSUM TABLE value}`` for every base table of user databases.

    System schemas are excluded; ``databases`` restricts the result. The value is None
    when the server could not checksum the table. Raises ToolError on SQL errors.
    """
    sql = (
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN %s"
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
            names = [(str(s), str(t)) for s, t in cur.fetchall()]
            for i in range(0, len(names), 50):
                chunk = names[i : i + 50]
                cur.execute(
                    "CHECKSUM TABLE " + ", ".join(f"{_quote(s)}.{_quote(t)}" for s, t in chunk)
                )
                for table, value in cur.fetchall():
                    result[str(table)] = None if value is None else int(value)
    except pymysql.MySQLError as exc:
        raise ToolError(f"CHECKSUM TABLE failed: {exc}") from exc
    for s, t in names:
        result.setdefault(f"{s}.{t}", None)
    return dict(sorted(result.items()))
