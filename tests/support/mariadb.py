"""pytest plugin: real, throwaway ``mariadbd`` instances for integration tests.

Load it with ``pytest_plugins = ["tests.support.mariadb"]`` (loading it twice is
harmless). Tests that use these fixtures are skipped with a clear reason when the
``mariadb-server`` package is missing, and get the ``mariadb`` marker automatically.

- ``mariadb_server`` (session): a started server (binlog on, TCP on 127.0.0.1 and a
  private socket) with a ``backup`` user holding the mariabackup grants. Share it; do
  not stop, kill or wipe it (use ``fresh_mariadb`` for that).
- ``fresh_mariadb`` (function): the same, but a new server for this test only; stopped
  (or already dead) afterwards, its files under ``tmp_path``.
- ``mariadb_factory`` (function): ``make(name, **create_kwargs) -> ThrowawayServer``,
  unstarted instances under ``tmp_path`` (all stopped at teardown), e.g. a second server
  to restore into.

Both server fixtures yield a :class:`MariaDBServer`: ``.instance``, ``.user``,
``.password``, ``.password_file`` (0600), ``.socket``, ``.port``, ``.datadir``,
``.connect()`` (root) and ``.connect_backup()``.

``BACKUPCTL_TEST_MARIADB_HOST/PORT/USER/PASSWORD`` (a server from
docker-compose.test.yml) are ignored for now: these tests stop, kill and wipe their
servers and read their datadirs, which an external server does not allow.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backupctl.demo.server import ThrowawayServer

BACKUP_USER = "backup"
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
_FIXTURES = {"mariadb_server", "fresh_mariadb", "mariadb_factory"}


@dataclass
class MariaDBServer:
    """A started test server and the credentials of its backup user."""

    instance: ThrowawayServer
    user: str
    password: str
    password_file: Path

    @property
    def socket(self) -> Path:
        return self.instance.socket

    @property
    def port(self) -> int | None:
        return self.instance.port

    @property
    def datadir(self) -> Path:
        return self.instance.datadir

    def connect(self, database: str | None = None) -> Any:
        """Root connection over the socket (autocommit)."""
        return self.instance.connect(database=database)

    def sql(self, *statements: str) -> list[Any]:
        """Run ``statements`` as root; return the rows of the last one."""
        conn = self.connect()
        rows: list[Any] = []
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                    rows = list(cur.fetchall())
        finally:
            conn.close()
        return rows

    def connect_backup(self, database: str | None = None) -> Any:
        """Connection as the backup user over the socket (autocommit)."""
        return self.instance.connect(self.user, self.password, database)


def binlog_moment() -> str:
    """A UTC time strictly between events on either side (binlog times have 1 s
    resolution): sleeps a little over a second before and after it."""
    time.sleep(1.2)
    moment = datetime.now(UTC).replace(microsecond=0).isoformat()
    time.sleep(1.2)
    return moment


def _require_mariadbd() -> None:
    for tool in ("mariadbd", "mariadb-install-db"):
        if shutil.which(tool, path=_SBIN_PATH) is None:
            pytest.skip(
                f"{tool} is not installed: apt-get install mariadb-server mariadb-backup "
                "mariadb-client"
            )


def start_server(base_dir: Path, extra_args: list[str] | None = None) -> MariaDBServer:
    """Create and start a server under ``base_dir`` with a backup user; the caller stops it."""
    _require_mariadbd()
    instance = ThrowawayServer.create(
        base_dir / "mariadb", binlog=True, networking=True, extra_args=extra_args
    )
    instance.start()
    password = secrets.token_urlsafe(12)
    try:
        instance.create_user(BACKUP_USER, password)
    except BaseException:
        instance.stop()
        raise
    password_file = base_dir / "backup-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return MariaDBServer(instance, BACKUP_USER, password, password_file)


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A shared, started server with binlog and a ``backup`` user (do not stop it)."""
    server = start_server(tmp_path_factory.mktemp("mariadb-session"))
    try:
        yield server
    finally:
        server.instance.stop()


@pytest.fixture
def fresh_mariadb(tmp_path: Path) -> Iterator[MariaDBServer]:
    """A started server for this test alone; free to stop, kill or wipe."""
    server = start_server(tmp_path)
    try:
        yield server
    finally:
        server.instance.stop()


@pytest.fixture
def mariadb_factory(tmp_path: Path) -> Iterator[Callable[..., ThrowawayServer]]:
    """``make(name, **kwargs)``: new unstarted instances (ThrowawayServer.create)."""
    made: list[ThrowawayServer] = []

    def make(name: str = "extra", **kwargs: Any) -> ThrowawayServer:
        _require_mariadbd()
        instance = ThrowawayServer.create(tmp_path / name, **kwargs)
        made.append(instance)
        return instance

    try:
        yield make
    finally:
        for instance in made:
            instance.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mariadb)
