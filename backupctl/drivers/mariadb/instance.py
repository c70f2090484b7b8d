"""Private ``mariadbd`` instances: the recovery instance a restore or drill starts on the
restored datadir (``backupctl.demo.server`` adds throwaway servers for the demo and tests).

An instance owns a datadir and a private run directory (socket, pid file, error log).
It always starts with ``--no-defaults``, so no ``/etc/mysql`` option file leaks in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import pymysql
import structlog

from backupctl.errors import ToolError, UsageError
from backupctl.proc import dies_with_us, require_tool, tail_text

MAX_SOCKET_PATH = 100  # sun_path holds 107 bytes plus NUL; keep a margin

log = structlog.get_logger()


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
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

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
        ``networking=False`` means ``--skip-networking``; otherwise TCP on ``port`` (the
        demo's throwaway servers pick a free one). ``run_as`` sets ``--user`` (e.g.
        ``mysql`` when the datadir must keep its ownership). Raises UsageError if
        ``datadir`` is not a directory, or for networking without a port.
        """
        datadir, run_dir = Path(datadir).resolve(), Path(run_dir).resolve()
        if not datadir.is_dir():
            raise UsageError(f"datadir {datadir} does not exist")
        if networking and port is None:
            raise UsageError("a MariaDB instance with networking needs a port")
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
            port=port if networking else None,
            pid_file=run_dir / "mysqld.pid",
            error_log=run_dir / "error.log",
            binlog=binlog,
            server_id=server_id,
            buffer_pool=buffer_pool,
            extra_args=list(extra_args or []),
            run_as=run_as,
            own_socket_dir=own,
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
        self._start_once(timeout)

    def _start_once(self, timeout: float) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        cmd, started = self.command(), time.monotonic()
        with open(self.error_log, "ab") as err:  # catches what it says before --log-error
            proc = subprocess.Popen(
                dies_with_us(cmd),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
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
