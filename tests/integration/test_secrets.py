"""No secret leaks, and what backupctl creates is private.

One shared flow with KNOWN secret values: the MariaDB password (``password_file``), the S3
secret access key (moto accepts any), a webhook bearer token (``token_file``) and an
Elasticsearch API key (``api_key_file``). It runs, with ``--log-format json -v`` and under
umask 000: a full backup to S3, a binlog backup, ``binlog follow``, ``verify --deep``, a
restore into a target datadir, a MariaDB drill, an Elasticsearch backup and verify, a model
backup and drill, ``status --json``, ``metrics`` and ``--metrics-textfile``. Then it scans:

- the argv of every process backupctl started, and its own (an audit hook installed by
  ``tests/support/audit_hook/sitecustomize.py`` records them), and which environment
  variables of those processes carry a secret;
- everything backupctl printed (stdout and stderr of every run);
- every object of both repositories (names; contents of all but the backed-up data);
- every file in the state directory (catalog, journals, run history, reports) and the
  metrics textfile;
- the webhook bodies received;

for each secret in its raw, URL-encoded, JSON-escaped, hex and base64 forms. And every
file and directory in the state directory and the local repository is 0600/0700.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import pytest
import yaml
import zstandard
from elasticsearch import Elasticsearch

from backupctl.drivers.mariadb.extract import LOG_ARTIFACT
from tests.support.elasticsearch import start_fake
from tests.support.mariadb import MariaDBServer, start_server
from tests.support.model_policies import model_policy, write_model
from tests.support.policies import mariadb_policy
from tests.support.webhook import ReceivedRequest, WebhookReceiver

pytestmark = pytest.mark.mariadb

ROOT = Path(__file__).resolve().parents[2]
AUDIT_HOOK_DIR = ROOT / "tests" / "support" / "audit_hook"
ES_KEY_ID = "backupctl"
#: the node-exporter textfile: 0644 by design (node-exporter reads it as its own user)
TEXTFILE_MODE = 0o644


# --------------------------------------------------------------------------- scanning


def encoded_forms(secret: str) -> set[bytes]:
    """``secret`` as it could appear in text or bytes: raw, URL-encoded, JSON-escaped,
    hex, and base64 (standard and URL-safe) at each of the three alignments a secret
    can have inside a longer encoded string (``Basic base64(user:secret)``)."""
    raw = secret.encode()
    forms = {
        raw,
        quote(secret, safe="").encode(),
        quote_plus(secret).encode(),
        json.dumps(secret)[1:-1].encode(),
        raw.hex().encode(),
    }
    for shift in range(3):
        chunk = raw[shift:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        forms |= {base64.b64encode(chunk), base64.urlsafe_b64encode(chunk)}
    return forms


class Scanner:
    """Finds any form of any of the known secrets in text or bytes."""

    def __init__(self, named: dict[str, str]):
        assert all(len(value) >= 16 for value in named.values())  # no accidental matches
        self.forms = {name: encoded_forms(value) for name, value in named.items()}

    def leaks(self, where: str, data: bytes | str) -> list[str]:
        blob = data.encode(errors="surrogateescape") if isinstance(data, str) else data
        return [
            f"{where}: the {name} ({form[:6]!r}…)"
            for name, forms in self.forms.items()
            for form in forms
            if form in blob
        ]


# --------------------------------------------------------------------------- the flow


@dataclass
class Run:
    args: list[str]
    code: int
    stdout: str
    stderr: str


@dataclass
class Flow:
    root: Path
    policies: Path
    state: Path
    repo: Path
    textfile: Path
    audit_log: Path
    env: dict[str, str]
    secrets: dict[str, str]
    umask: int = 0o000
    runs: list[Run] = field(default_factory=list)
    webhook: list[ReceivedRequest] = field(default_factory=list)
    es_users: list[str | None] = field(default_factory=list)
    s3_objects: dict[str, bytes] = field(default_factory=dict)

    def argv(self, *args: str, textfile: bool = False) -> list[str]:
        head = ["--state-dir", str(self.state), "--log-format", "json", "-v"]
        head += ["--policies", str(self.policies)]
        if textfile:
            head += ["--metrics-textfile", str(self.textfile)]
        return [sys.executable, "-m", "backupctl", *head, *args]

    def run(self, *args: str, expect: tuple[int, ...] = (0,), textfile: bool = False) -> Run:
        proc = subprocess.run(
            self.argv(*args, textfile=textfile),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=600,
            check=False,
            umask=self.umask,
        )
        run = Run(list(args), proc.returncode, proc.stdout, proc.stderr)
        self.runs.append(run)
        assert run.code in expect, f"backupctl {' '.join(args)} exited {run.code}:\n{run.stderr}"
        assert "Traceback" not in run.stderr
        return run

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_log.read_text().splitlines()]


def _tool(argv: list[str]) -> str:
    """The tool a child runs, through ``setpriv --pdeathsig KILL -- TOOL …``."""
    if Path(argv[0]).name == "setpriv" and "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    return Path(argv[0]).name


def _known_secret(prefix: str) -> str:
    # characters that URL encoding changes, so the encoded forms differ from the raw one
    return f"{prefix}+{secrets.token_hex(10)}/x="


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def _env(flow_root: Path, audit_log: Path, secrets_file: Path, aws_secret: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(
        [str(AUDIT_HOOK_DIR), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "BACKUPCTL_TEST_AUDIT_LOG": str(audit_log),
        "BACKUPCTL_TEST_AUDIT_SECRETS": str(secrets_file),
        "AWS_SECRET_ACCESS_KEY": aws_secret,
        "HOME": str(flow_root),  # nothing from the developer's home directory
    }


def _wait_followed(status: Path, gtid: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(status.read_text()).get("last_gtid") == gtid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"binlog follow did not store {gtid} within {timeout}s")


def _follow(flow: Flow, server: MariaDBServer) -> None:
    """Run ``binlog follow shop`` until it stored one new transaction, then SIGTERM it."""
    proc = subprocess.Popen(
        flow.argv("binlog", "follow", "shop"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=flow.env,
        umask=flow.umask,
    )
    try:
        server.sql("INSERT INTO shop.orders VALUES (100, 'while following')")
        gtid = str(server.sql("SELECT @@gtid_binlog_pos")[0][0])
        _wait_followed(flow.state / "binlog-follow" / "shop" / "status.json", gtid)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            out, err = proc.communicate()
    flow.runs.append(Run(["binlog", "follow", "shop"], proc.returncode, out, err))
    assert "Traceback" not in err


def _policies(
    flow: Flow, server: MariaDBServer, s3: dict[str, str], es_url: str, hook: WebhookReceiver
) -> None:
    token_file = _secret_file(flow.root / "webhook-token", flow.secrets["webhook token"])
    es_key_file = _secret_file(
        flow.root / "es-api-key", f"{ES_KEY_ID}:{flow.secrets['Elasticsearch API key']}"
    )
    notify = [
        {"url": hook.url("/events"), "token_file": str(token_file), "when": ["failure", "success"]}
    ]
    mariadb_policy(
        flow.policies,
        server,
        s3,
        notify=notify,
        objectives={"rpo": "1h", "rto": "1h"},
        restore={"verify": [{"sql": "SELECT COUNT(*) FROM shop.orders", "expect": "> 0"}]},
    )
    search = {
        "version": 1,
        "name": "search",
        "driver": "elasticsearch",
        "connection": {"url": es_url, "api_key_file": str(es_key_file)},
        "snapshot_repository": {
            "name": "secrets-repo",
            "type": "fs",
            "settings": {"location": str(flow.root / "es-snapshots" / "repo")},
        },
        "repository": f"file://{flow.repo}",
        "indices": ["orders-*"],
        "schedule": {"snapshot": "30 2 * * *"},
        "retention": {"expire_after": "30d", "min_count": 1, "max_count": 10},
        "objectives": {"rpo": "24h", "rto": "2h"},
        "notify": notify,
    }
    (flow.policies / "search.yaml").write_text(yaml.safe_dump(search, sort_keys=False))
    model = write_model(flow.root / "models" / "llm", "v1")
    model_policy(
        flow.policies,
        "llm",
        model,
        flow.repo,
        {"check": "*/15 * * * *"},
        objectives={"rpo": "1h", "rto": "1h"},
    )


def _careless_policy(flow: Flow) -> Path:
    """A policy with secrets where they do not belong: each is refused, none echoed."""
    password, token = flow.secrets["MariaDB password"], flow.secrets["webhook token"]
    data = {
        "version": 1,
        "name": "careless",
        "driver": "mariadb",
        "connection": {"host": "127.0.0.1", "user": "backup", "pasword": password},
        "datadir": str(flow.root / "nowhere"),
        "repository": f"s3://backup:{quote(password, safe='')}@bucket/x",
        "schedule": {"full": "0 2 * * *"},
        "notify": [{"url": f"http://hook:{quote(token, safe='')}@127.0.0.1:9/x"}],
    }
    directory = flow.root / "careless"
    directory.mkdir()
    (directory / "careless.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return directory


def _collect_s3(flow: Flow, client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            flow.s3_objects[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _is_data(key: str) -> bool:
    """Backed-up database content (mbstream, binlogs, streamed binlog segments): the
    database's bytes, not backupctl's. Its logs are backupctl's and are scanned."""
    return key.endswith(".zst") and not key.endswith(LOG_ARTIFACT)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("secrets")
    named = {
        "MariaDB password": _known_secret("Db-pw"),
        "S3 secret access key": _known_secret("aws-secret-key"),
        "webhook token": _known_secret("webhook-token"),
        "Elasticsearch API key": _known_secret("es-api-key"),
    }
    secrets_file = _secret_file(root / "audit-secrets", "\n".join(named.values()))
    bucket = f"backupctl-secrets-{secrets.token_hex(6)}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)

    started = start_server(root / "server")
    es = start_fake(root / "es-snapshots", api_keys={ES_KEY_ID: named["Elasticsearch API key"]})
    try:
        started.instance.create_user("vault", named["MariaDB password"])
        server = MariaDBServer(
            started.instance,
            "vault",
            named["MariaDB password"],
            _secret_file(root / "db-password", named["MariaDB password"]),
        )
        server.sql(
            "CREATE DATABASE shop",
            "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40))",
            "INSERT INTO shop.orders VALUES (1, 'before the full backup')",
        )
        client = Elasticsearch(es.url, api_key=(ES_KEY_ID, named["Elasticsearch API key"]))
        client.indices.create(index="orders-1", settings={"number_of_replicas": 0})
        client.bulk(operations=[{"index": {"_index": "orders-1"}}, {"n": 1}], refresh=True)
        client.close()

        audit_log = root / "audit.jsonl"
        env = _env(root, audit_log, secrets_file, named["S3 secret access key"])
        textfile = root / "textfile" / "backupctl.prom"
        textfile.parent.mkdir()
        flow = Flow(
            root,
            root / "policies",
            root / "state",
            root / "repo",
            textfile,
            audit_log,
            env,
            named,
        )
        # the first notification is answered 503: its retry is logged as well
        with WebhookReceiver(replies=[503]) as hook:
            s3_repo = {"url": f"s3://{bucket}/backups", "endpoint_url": s3_endpoint}
            _policies(flow, server, s3_repo, es.url, hook)
            _run_everything(flow, server)
            # shop: the full backup (503, then its retry), the binlog backup and the drill;
            # search: its backup
            flow.webhook = hook.wait_for(5, timeout=10)
        flow.es_users = [r.user for r in es.server.controls.requests] if es.server else []
        _collect_s3(flow, s3, bucket)
        yield flow
    finally:
        es.close()
        started.instance.stop()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def _run_everything(flow: Flow, server: MariaDBServer) -> None:
    flow.run("backup", "shop", "--json")
    server.sql("INSERT INTO shop.orders VALUES (2, 'after the full backup')")
    flow.run("backup", "shop", "--type", "binlog", "--json")
    _follow(flow, server)
    flow.run("verify", "shop", "--deep", "--json")
    flow.run("restore", "shop", "--target-datadir", str(flow.root / "restored"), "--yes")
    flow.run("drill", "run", "shop", "--json")
    flow.run("backup", "search", "--json", textfile=True)
    flow.run("verify", "search", "--json")
    flow.run("backup", "llm", "--json", textfile=True)
    flow.run("drill", "run", "llm", "--json", textfile=True)
    flow.run("list", "--json")
    flow.run("status", "--json", expect=(0, 1))
    flow.run("metrics")
    careless = flow.run("policy", "validate", str(_careless_policy(flow)), expect=(2,))
    assert "3 problem(s)" in careless.stderr


# --------------------------------------------------------------------------- the tests


def test_the_flow_really_used_every_secret(flow: Flow) -> None:
    """Without this, the scans below could pass because nothing was ever sent."""
    tokens = {r.headers["Authorization"] for r in flow.webhook}
    assert tokens == {f"Bearer {flow.secrets['webhook token']}"}
    assert f"api_key:{ES_KEY_ID}" in flow.es_users
    audit = flow.audit()
    started = [r for r in audit if r["event"] == "start"]
    assert len(started) >= len(flow.runs)  # every backupctl run was audited
    assert all("AWS_SECRET_ACCESS_KEY" in r["env_names"] for r in started)
    tools = {_tool(r["argv"]) for r in audit if r["event"] != "start" and r["argv"]}
    assert {"mariabackup", "mbstream", "mariadb-binlog", "mariadbd"} <= tools, tools
    retried = [json.loads(x) for r in flow.runs for x in r.stderr.splitlines() if "retry" in x]
    assert retried, "the webhook's 503 should have been retried (and logged)"
    assert any(key.endswith("manifest.json") for key in flow.s3_objects)
    assert flow.textfile.is_file()
    files = [p for root in (flow.state, flow.repo) for p in root.rglob("*") if p.is_file()]
    print(
        f"secrets scan: {len(flow.runs)} backupctl runs, {len(audit) - len(started)} processes "
        f"started by them, {len(flow.s3_objects)} S3 objects, {len(files)} local files, "
        f"{len(flow.webhook)} webhook bodies, {len(flow.secrets)} secrets"
    )


def test_the_scanner_finds_a_secret_in_any_form(flow: Flow) -> None:
    scan = Scanner(flow.secrets)
    token = flow.secrets["webhook token"]
    assert scan.leaks("raw", f"x{token}y")
    assert scan.leaks("url", "?t=" + quote_plus(token))
    assert scan.leaks("json", json.dumps({"t": token}))
    for prefix in ("", "a", "ab"):
        assert scan.leaks("basic", base64.b64encode(f"{prefix}user:{token}".encode()))
    assert not scan.leaks("clean", "user:***")


def test_no_secret_in_any_argv_or_added_to_any_environment(flow: Flow) -> None:
    scan = Scanner(flow.secrets)
    found: list[str] = []
    for record in flow.audit():
        found += scan.leaks(f"argv {record['argv'][:3]}", "\0".join(record["argv"]))
        # inherited from backupctl's own environment is the operator's doing; added is ours
        assert set(record["env_with_secret"]) <= {"AWS_SECRET_ACCESS_KEY"}, record["argv"][:3]
        assert "MYSQL_PWD" not in record["env_names"]
    assert found == []


def test_option_files_with_passwords_never_reach_a_disk(flow: Flow) -> None:
    """Passwords reach the MariaDB tools in an option file: an anonymous memfd (0600, gone
    with its last holder), named /dev/fd/N, never a path on a disk."""
    options = [
        arg.split("=", 1)[1]
        for record in flow.audit()
        for arg in record["argv"]
        if arg.startswith(("--defaults-extra-file=", "--defaults-file="))
    ]
    assert options, "the tools got their password somehow: through an option file"
    for path in options:
        assert path.startswith("/dev/fd/") or not Path(path).exists(), path


def test_no_secret_in_any_log_or_output(flow: Flow) -> None:
    scan = Scanner(flow.secrets)
    found = []
    for run in flow.runs:
        found += scan.leaks(f"stdout of {run.args}", run.stdout)
        found += scan.leaks(f"stderr of {run.args}", run.stderr)
    assert found == []
    logged = [run for run in flow.runs if run.args[0] != "policy"]  # policy errors: text
    lines = [line for run in logged for line in run.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines)  # JSON logs
    assert any('"level": "debug"' in line for line in lines)  # -v really logged more


def test_no_secret_in_the_repositories(flow: Flow) -> None:
    scan = Scanner(flow.secrets)
    found = []
    for key, body in flow.s3_objects.items():
        found += scan.leaks(f"S3 key {key}", key)
        if key.endswith(LOG_ARTIFACT):
            body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
        if not _is_data(key):
            found += scan.leaks(f"S3 object {key}", body)
    reports = [k for k in flow.s3_objects if "/drills/" in k]
    assert reports and any(k.endswith("report.html") for k in reports)
    local = [p for p in flow.repo.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in local)
    assert any("drills" in p.parts for p in local)
    for path in local:
        found += scan.leaks(f"local object {path}", str(path))
        found += scan.leaks(f"local object {path}", path.read_bytes())
    assert found == []


def test_no_secret_in_the_state_directory_or_the_metrics(flow: Flow) -> None:
    scan = Scanner(flow.secrets)
    files = [p for p in flow.state.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"catalog.sqlite", "runs.json", "journal.json", "report.json"} <= names, names
    found = []
    for path in [*files, flow.textfile]:
        found += scan.leaks(f"{path}", str(path))
        found += scan.leaks(f"{path}", path.read_bytes())
    metrics = next(r for r in flow.runs if r.args == ["metrics"])
    assert "backupctl_" in metrics.stdout
    assert "backupctl_" in flow.textfile.read_text()
    assert found == []


def test_no_secret_in_the_webhook_bodies(flow: Flow) -> None:
    scan = Scanner(flow.secrets)
    found = []
    for request in flow.webhook:
        found += scan.leaks(f"webhook body {request.path}", request.body)
        found += scan.leaks(f"webhook target {request.path}", request.target)
    assert {r.json["policy"] for r in flow.webhook} >= {"shop", "search"}
    assert found == []


def _not_private(root: Path) -> list[str]:
    wrong = []
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode) and mode != 0o700:
            wrong.append(f"{path} is a directory with mode {mode:o}")
        elif stat.S_ISREG(info.st_mode) and mode != 0o600:
            wrong.append(f"{path} is a file with mode {mode:o}")
    return wrong


def test_everything_created_is_private_even_under_umask_000(flow: Flow) -> None:
    assert flow.umask == 0o000
    wrong = _not_private(flow.state) + _not_private(flow.repo)
    assert not wrong, "\n".join(wrong)
    # the one exception, documented in write_textfile: node-exporter reads it
    assert stat.S_IMODE(flow.textfile.stat().st_mode) == TEXTFILE_MODE


def test_everything_created_is_private_under_umask_022(tmp_path: Path) -> None:
    """The usual umask, on a cheap flow: model backups, a drill and a restore, into a new
    state directory and repository (both created by backupctl). The restored model is the
    exception: it gets its recorded modes, its top directory what the operator's umask
    allows (the model server, another user, must read it)."""
    model = write_model(tmp_path / "models" / "llm", "v1")
    (model / "weights.bin").chmod(0o640)
    policies = tmp_path / "policies"
    model_policy(policies, "llm", model, tmp_path / "deep" / "repo", {"check": "*/15 * * * *"})
    flow = Flow(
        tmp_path,
        policies,
        tmp_path / "deep" / "state",
        tmp_path / "deep" / "repo",
        tmp_path / "unused.prom",
        tmp_path / "audit.jsonl",
        {**os.environ, "HOME": str(tmp_path)},
        {},
        umask=0o022,
    )
    flow.run("backup", "llm")
    flow.run("drill", "run", "llm")
    write_model(model, "v2")
    flow.run("backup", "llm")
    flow.run("restore", "llm", "--previous", "--yes")
    flow.run("catalog", "sync")
    assert (model / "VERSION").read_text() == "v1\n"
    assert stat.S_IMODE((model / "weights.bin").stat().st_mode) == 0o640  # as recorded
    assert stat.S_IMODE(model.stat().st_mode) == 0o755  # 0755 minus the umask 022
    assert (flow.state / "catalog.sqlite").is_file()
    wrong = _not_private(tmp_path / "deep")
    assert not wrong, "\n".join(wrong)
