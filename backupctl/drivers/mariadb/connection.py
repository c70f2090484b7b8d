"""Connections to the protected server, from a policy's ``connection`` block."""

from __future__ import annotations

import ssl
from typing import Any

import pymysql

from backupctl.drivers.mariadb.details import DatabaseInfo, ServerInventory, TableInfo
from backupctl.errors import BackupFailed, ServerUnreachable
from backupctl.policy.mariadb import MariaDBConnection
from backupctl.proc import mysql_option_file

_UNREACHABLE = {2002, 2003, 2006, 2013}  # no socket, refused/unreachable, gone, lost
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


def describe(conn: MariaDBConnection) -> str:
    """Return where ``conn`` points, for messages (never the password)."""
    where = f"socket {conn.socket}" if conn.socket else f"{conn.host}:{conn.port}"
    return f"{conn.user}@{where}"


def connect(conn: MariaDBConnection) -> pymysql.connections.Connection:
    """Open a pymysql connection. Raises BackupFailed with the server's message."""
    kwargs: dict[str, Any] = {
        "user": conn.user,
        "password": conn.resolve_password() or "",
        "connect_timeout": conn.connect_timeout,
        "autocommit": True,
    }
    if conn.socket:
        kwargs["unix_socket"] = str(conn.socket)
    else:
        kwargs["host"], kwargs["port"] = conn.host, conn.port
    if conn.tls:
        kwargs["ssl"] = tls_context(conn)  # a context makes pymysql insist on TLS
    try:
        return pymysql.connect(**kwargs)
    except pymysql.MySQLError as exc:
        tls_failure = getattr(exc, "original_exception", None)
        if isinstance(tls_failure, ssl.SSLError):  # not worth retrying: a setup problem
            raise BackupFailed(
                f"cannot connect to MariaDB as {describe(conn)}: TLS handshake failed: "
                f"{_tls_reason(tls_failure)}"
            ) from exc
        error = ServerUnreachable if exc.args and exc.args[0] in _UNREACHABLE else BackupFailed
        raise error(f"cannot connect to MariaDB as {describe(conn)}: {_reason(exc)}") from exc


def tls_context(conn: MariaDBConnection) -> ssl.SSLContext:
    """Return the TLS context for ``conn``, checking the server as the MariaDB client
    tools do: the chain against ``ssl_ca`` when given, the host name too when
    ``ssl_verify_server_cert``. Raises BackupFailed when a certificate cannot be loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # TLS 1.2+, CERT_REQUIRED, check_hostname
    ctx.check_hostname = conn.ssl_verify_server_cert
    try:
        if conn.ssl_ca is not None:
            ctx.load_verify_locations(cafile=str(conn.ssl_ca))
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if conn.ssl_cert is not None and conn.ssl_key is not None:
            ctx.load_cert_chain(str(conn.ssl_cert), str(conn.ssl_key))
    except (ssl.SSLError, OSError) as exc:
        raise BackupFailed(
            f"cannot load the TLS certificates of {describe(conn)} "
            f"(ssl_ca {conn.ssl_ca}, ssl_cert {conn.ssl_cert}, ssl_key {conn.ssl_key}): "
            f"{_tls_reason(exc)}"
        ) from exc
    return ctx


def _tls_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's certificate was refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return str(exc)
    return exc.strerror or str(exc)


def _reason(exc: pymysql.MySQLError) -> str:
    args = exc.args
    return str(args[1]) if len(args) > 1 else str(exc)


def client_options(conn: MariaDBConnection) -> str:
    """Return a ``[client]`` option file for command-line tools (holds the password and
    the TLS settings)."""
    options: dict[str, str | int | None] = {"user": conn.user, "password": conn.resolve_password()}
    if conn.socket:
        options["socket"] = str(conn.socket)
    else:
        options["host"], options["port"] = conn.host, conn.port
    if conn.tls:  # the same checks as tls_context(); mariabackup and mariadb-binlog read these
        options["ssl-ca"] = str(conn.ssl_ca) if conn.ssl_ca else None
        options["ssl-cert"] = str(conn.ssl_cert) if conn.ssl_cert else None
        options["ssl-key"] = str(conn.ssl_key) if conn.ssl_key else None
        options["ssl-verify-server-cert"] = int(conn.ssl_verify_server_cert)
    return mysql_option_file("client", options)


def inventory(db: pymysql.connections.Connection) -> ServerInventory:
    """Return server version, datadir and every user table with row and size estimates."""
    with db.cursor() as cur:
        cur.execute("SELECT VERSION(), @@datadir, @@log_bin, @@server_id, @@gtid_strict_mode")
        version, datadir, log_bin, server_id, strict = cur.fetchone()
        placeholders = ",".join(["%s"] * len(SYSTEM_SCHEMAS))
        cur.execute(
            "SELECT table_schema, table_name, engine, COALESCE(table_rows, 0),"
            " COALESCE(data_length, 0) + COALESCE(index_length, 0)"
            " FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            f" AND table_schema NOT IN ({placeholders}) ORDER BY table_schema, table_name",
            SYSTEM_SCHEMAS,
        )
        rows = cur.fetchall()
        cur.execute(
            f"SELECT schema_name FROM information_schema.schemata"
            f" WHERE schema_name NOT IN ({placeholders}) ORDER BY schema_name",
            SYSTEM_SCHEMAS,
        )
        schemas = [r[0] for r in cur.fetchall()]
    databases: dict[str, list[TableInfo]] = {name: [] for name in schemas}
    for schema, table, engine, rows_estimate, size in rows:
        databases.setdefault(schema, []).append(
            TableInfo(name=table, engine=engine, rows_estimate=int(rows_estimate), bytes=int(size))
        )
    return ServerInventory(
        server_version=version,
        server_datadir=datadir,
        log_bin=bool(log_bin),
        server_id=int(server_id),
        gtid_strict_mode=bool(strict),
        databases=[DatabaseInfo(name=n, tables=t) for n, t in databases.items()],
    )


def innodb_position(db: pymysql.connections.Connection) -> tuple[int, int | None]:
    """The server's id and its current InnoDB log sequence number (None when the server
    does not say)."""
    with db.cursor() as cur:
        cur.execute("SELECT @@server_id")
        server_id = int(cur.fetchone()[0])
        cur.execute(
            "SELECT variable_value FROM information_schema.global_status"
            " WHERE variable_name = 'INNODB_LSN_CURRENT'"
        )
        row = cur.fetchone()
    return server_id, int(row[0]) if row and str(row[0]).isdigit() else None
