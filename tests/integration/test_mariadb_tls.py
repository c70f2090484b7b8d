"""MariaDB over mutual TLS: ``ssl_ca``/``ssl_cert``/``ssl_key`` reach pymysql, mariabackup
and mariadb-binlog, and ``ssl_verify_server_cert`` checks the server as promised.

The server is a throwaway ``mariadbd`` started with a certificate from a CA made in the
test; the backup user is created ``REQUIRE X509``, so the server itself refuses every
session of that user that is not TLS with a client certificate the CA signed: each
command that succeeds proves that all its connections (pymysql, mariabackup,
mariadb-binlog, the restore's health check) used the certificate.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from backupctl.demo.server import BACKUP_GRANTS
from backupctl.drivers.mariadb import connection
from backupctl.policy.mariadb import MariaDBConnection
from backupctl.proc import require_tool, secret_file
from tests.support.cli import popen_backupctl
from tests.support.mariadb import MariaDBServer, start_server
from tests.support.policies import mariadb_policy, restorable_policy
from tests.support.tls import CertificateAuthority

pytestmark = pytest.mark.mariadb

SERVER_NAMES = ("127.0.0.1", "localhost")  # what the server's certificate is valid for
OTHER_ADDRESS = "127.0.0.2"  # the server listens here too, but its certificate does not say so


@dataclass
class TlsServer:
    """A started server with TLS, whose ``backup`` user must present a client certificate."""

    server: MariaDBServer
    ca: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that did not sign the server's certificate

    def tls(self, **overrides: Any) -> dict[str, Any]:
        """The policy's connection block: host, port, user, password file and TLS."""
        block: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.server.port,
            "user": self.server.user,
            "password_file": str(self.server.password_file),
            "ssl_ca": str(self.ca),
            "ssl_cert": str(self.client_cert),
            "ssl_key": str(self.client_key),
        }
        block.update(overrides)
        return {k: v for k, v in block.items() if v is not None}

    def policy(self, directory: Path, restorable: bool = False, **overrides: Any) -> Path:
        """Write the ``shop`` policy (repository ``directory/repo``) with this TLS setup."""
        if restorable:
            path = restorable_policy(directory, self.server, health_timeout="20s")
        else:
            path = mariadb_policy(
                directory / "policies", self.server, f"file://{directory / 'repo'}"
            )
        return with_connection(path, self.tls(**overrides))

    def ssl_accepts(self) -> int:
        """TLS handshakes the server has accepted (asked over a plain root session)."""
        db = pymysql.connect(
            unix_socket=str(self.server.socket), user="root", ssl_disabled=True, autocommit=True
        )
        try:
            with db.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
                return int(cur.fetchone()[1])
        finally:
            db.close()


def with_connection(path: Path, block: dict[str, Any]) -> Path:
    data = yaml.safe_load(path.read_text())
    data["connection"] = block
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_tls_server(base: Path) -> TlsServer:
    """Make a CA, server and client certificates, and start a server that needs them."""
    ca = CertificateAuthority.create(base / "tls")
    server_cert, server_key = ca.issue("server", hosts=SERVER_NAMES)
    client_cert, client_key = ca.issue("client")
    other = CertificateAuthority.create(base / "other-tls", "a CA that signed nothing here")
    server = start_server(
        base,
        extra_args=[
            f"--ssl-ca={ca.cert}",
            f"--ssl-cert={server_cert}",
            f"--ssl-key={server_key}",
            f"--bind-address=127.0.0.1,{OTHER_ADDRESS}",
        ],
    )
    try:
        server.sql(
            f"CREATE USER backup@'{OTHER_ADDRESS}' IDENTIFIED BY '{server.password}'",
            f"GRANT {BACKUP_GRANTS} ON *.* TO backup@'{OTHER_ADDRESS}'",
            *(f"ALTER USER backup@'{h}' REQUIRE X509" for h in ("localhost", "127.0.0.1")),
            f"ALTER USER backup@'{OTHER_ADDRESS}' REQUIRE X509",
        )
    except BaseException:
        server.instance.stop()
        raise
    return TlsServer(server, ca.cert, client_cert, client_key, other.cert)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """Shared by the tests of this module that do not stop or restore the server."""
    setup = start_tls_server(tmp_path_factory.mktemp("mariadb-tls"))
    try:
        yield setup
    finally:
        setup.server.instance.stop()


def _shop(server: MariaDBServer, database: str, rows: int) -> None:
    server.sql(
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"CREATE TABLE IF NOT EXISTS {database}.orders (id INT PRIMARY KEY, note VARCHAR(20))",
        *(f"INSERT INTO {database}.orders VALUES ({i}, 'row {i}')" for i in range(1, rows + 1)),
    )


def _refused(result: Any, *needles: str) -> None:
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_the_server_refuses_the_backup_user_without_a_client_certificate(
    tls_server: TlsServer, tmp_path: Path, backupctl: Any
) -> None:
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        pymysql.connect(
            host="127.0.0.1",
            port=tls_server.server.port,
            user=tls_server.server.user,
            password=tls_server.server.password,
        )
    denied = f"Access denied for user '{tls_server.server.user}'@'127.0.0.1'"
    # the same policy without its client certificate: TLS, but no certificate to show
    policy = tls_server.policy(tmp_path, ssl_cert=None, ssl_key=None)
    for kind in ("full", "binlog"):
        result = backupctl("backup", "shop", "--type", kind, policies=policy)
        _refused(result, "cannot connect to MariaDB as backup@127.0.0.1:", denied)
    follow = backupctl("binlog", "follow", "shop", policies=policy, timeout=60)
    _refused(follow, denied)
    # and without TLS settings at all
    with_connection(policy, tls_server.tls(ssl_ca=None, ssl_cert=None, ssl_key=None))
    _refused(backupctl("backup", "shop", policies=policy), denied)


def test_full_and_binlog_backups_verify_restore_and_drill_over_mutual_tls(
    tls_server: TlsServer, tmp_path: Path, backupctl: Any
) -> None:
    server = tls_server.server
    _shop(server, "shop", 3)
    policy = tls_server.policy(tmp_path)

    before = tls_server.ssl_accepts()
    full = backupctl("backup", "shop", "--json", policies=policy)
    assert full.code == 0, full.output
    # the inventory query (pymysql) and mariabackup's sessions were TLS handshakes
    assert tls_server.ssl_accepts() - before >= 2

    server.sql("INSERT INTO shop.orders VALUES (4, 'after full')")
    before = tls_server.ssl_accepts()
    binlog = backupctl("backup", "shop", "--type", "binlog", "--json", policies=policy)
    assert binlog.code == 0, binlog.output
    assert json.loads(binlog.stdout)["details"]["binlogs"], binlog.stdout
    # pymysql (FLUSH BINARY LOGS) and mariadb-binlog --read-from-remote-server
    assert tls_server.ssl_accepts() - before >= 2

    conn = MariaDBConnection.model_validate(tls_server.tls())
    db = connection.connect(conn)
    try:
        with db.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            cipher = cur.fetchone()[1]
            cur.execute("SELECT CURRENT_USER()")
            user = cur.fetchone()[0]
    finally:
        db.close()
    assert cipher and user == "backup@127.0.0.1"

    verified = backupctl("verify", "shop", policies=policy)
    assert verified.code == 0, verified.output

    target = tmp_path / "restored"
    restored = backupctl("restore", "shop", "--target-datadir", str(target), policies=policy)
    assert restored.code == 0, restored.output
    assert (target / "shop" / "orders.ibd").is_file()

    drill = backupctl("drill", "run", "shop", "--json", policies=policy)
    assert drill.code == 0, drill.output
    report = json.loads(drill.stdout)
    assert report["passed"], report
    assert any(s["name"] == "replay-binlogs" and s["status"] == "ok" for s in report["steps"])


def test_binlog_follow_streams_over_mutual_tls(
    tls_server: TlsServer, tmp_path: Path, backupctl: Any
) -> None:
    server = tls_server.server
    _shop(server, "follow", 1)
    policy = tls_server.policy(tmp_path)
    data = yaml.safe_load(policy.read_text())
    data["schedule"]["binlog"] = "continuous"
    data["backup"]["binlog_flush_interval"] = "1s"
    policy.write_text(yaml.safe_dump(data))
    status_file = backupctl.state_dir / "binlog-follow" / "shop" / "status.json"

    head = ["--state-dir", str(backupctl.state_dir), "--log-format", "json"]
    follower = popen_backupctl([*head, "--policies", str(policy), "binlog", "follow", "shop"])
    try:
        server.sql("INSERT INTO follow.orders VALUES (2, 'streamed')")
        wanted = str(server.sql("SELECT @@gtid_binlog_pos")[0][0])
        deadline = time.monotonic() + 30
        stored = None
        while time.monotonic() < deadline and follower.poll() is None:
            if status_file.exists():
                stored = json.loads(status_file.read_text()).get("last_gtid")
                if stored == wanted:
                    break
            time.sleep(0.2)
        assert stored == wanted, f"follower stored {stored}, wanted {wanted}"
        follower.send_signal(signal.SIGTERM)
        _out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    assert "Traceback" not in err


def _client_tool(conn: MariaDBConnection) -> subprocess.CompletedProcess[str]:
    """Run the ``mariadb`` client (the client library mariabackup and mariadb-binlog use)
    with the option file backupctl gives those tools; print the session's cipher."""
    binary = require_tool("mariadb", "mariadb-client")
    with secret_file(connection.client_options(conn)) as (cnf, fd):
        return subprocess.run(
            [binary, f"--defaults-extra-file={cnf}", "-N", "-e", "SHOW STATUS LIKE 'Ssl_cipher'"],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def test_ssl_verify_server_cert_checks_the_ca_and_the_host_name(
    tls_server: TlsServer, tmp_path: Path, backupctl: Any
) -> None:
    _shop(tls_server.server, "verified", 1)
    policy = tls_server.policy(tmp_path, ssl_ca=str(tls_server.other_ca))
    wrong_ca = backupctl("backup", "shop", policies=policy)
    _refused(wrong_ca, "TLS handshake failed", "the server's certificate was refused")

    with_connection(policy, tls_server.tls(host=OTHER_ADDRESS))
    wrong_name = backupctl("backup", "shop", policies=policy)
    _refused(wrong_name, "TLS handshake failed", f"not valid for '{OTHER_ADDRESS}'")

    # without the host name check the CA still has to have signed the certificate
    with_connection(policy, tls_server.tls(host=OTHER_ADDRESS, ssl_verify_server_cert=False))
    unchecked_name = backupctl("backup", "shop", policies=policy)
    assert unchecked_name.code == 0, unchecked_name.output
    block = tls_server.tls(ssl_ca=str(tls_server.other_ca), ssl_verify_server_cert=False)
    with_connection(policy, block)
    _refused(backupctl("backup", "shop", policies=policy), "TLS handshake failed")

    # mariabackup and mariadb-binlog read the same checks from their option file
    cases = [
        (tls_server.tls(host=OTHER_ADDRESS), False),
        (tls_server.tls(host=OTHER_ADDRESS, ssl_verify_server_cert=False), True),
        (block, False),
        (tls_server.tls(), True),
    ]
    for settings, accepted in cases:
        run = _client_tool(MariaDBConnection.model_validate(settings))
        if accepted:
            assert run.returncode == 0 and run.stdout.split()[1], run.stdout + run.stderr
        else:
            assert run.returncode != 0 and "TLS/SSL error" in run.stderr, run.stderr


def test_in_place_restore_health_check_connects_over_mutual_tls(
    tmp_path: Path, backupctl: Any
) -> None:
    setup = start_tls_server(tmp_path / "server")
    try:
        server = setup.server
        _shop(server, "shop", 3)
        policy = setup.policy(tmp_path, restorable=True)
        backup = backupctl("backup", "shop", policies=policy)
        assert backup.code == 0, backup.output
        server.sql("DELETE FROM shop.orders")

        result = backupctl("restore", "shop", "--yes", "--json", policies=policy)
        assert result.code == 0, result.output
        steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
        assert steps["health-check"]["status"] == "ok"
        assert "server answers" in steps["health-check"]["detail"]
        assert server.sql("SELECT COUNT(*) FROM shop.orders")[0][0] == 3
    finally:
        setup.server.instance.stop()


def test_tls_settings_are_checked_when_the_policy_is_loaded(tmp_path: Path, backupctl: Any) -> None:
    ca = CertificateAuthority.create(tmp_path / "tls")
    cert, key = ca.issue("client")
    missing = tmp_path / "nope.pem"
    cases: dict[str, tuple[dict[str, Any], str | None]] = {
        "cert-without-key": ({"ssl_ca": ca.cert, "ssl_cert": cert}, "go together"),
        "missing-ca": (
            {"ssl_ca": missing, "ssl_cert": cert, "ssl_key": key},
            f"ssl_ca: file {missing} does not exist",
        ),
        "no-ca-to-verify": ({"ssl_cert": cert, "ssl_key": key}, "needs ssl_ca"),
        "verify-without-tls": (
            {"ssl_verify_server_cert": False},
            "ssl_verify_server_cert applies only with ssl_ca or ssl_cert",
        ),
        "unverified": ({"ssl_cert": cert, "ssl_key": key, "ssl_verify_server_cert": False}, None),
    }
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, (tls, _) in cases.items():
        block = {"host": "127.0.0.1", "user": "backup", "password": "secret"}
        block.update({k: v if isinstance(v, bool) else str(v) for k, v in tls.items()})
        policy = {"version": 1, "name": name, "driver": "mariadb", "connection": block}
        policy |= {"datadir": "/var/lib/mysql", "repository": f"file://{tmp_path / 'repo'}"}
        (policies / f"{name}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))

    result = backupctl("policy", "validate", str(policies))
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    problems = [line for line in result.output.splitlines() if ".yaml:" in line]
    for name, (_, message) in cases.items():
        said = [p for p in problems if f"/{name}.yaml:" in p]
        if message is None:
            assert said == [], result.output
        else:
            assert len(said) == 1 and " connection: " in said[0], result.output
            assert message in said[0], result.output
