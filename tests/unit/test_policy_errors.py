"""Malformed policies: exit 2, every error with file:line and field, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_backupctl

GOOD = """\
version: 1
name: shop-db
driver: mariadb
connection:
  host: 127.0.0.1
  port: 3306
  user: backup
  password_file: {secret}
datadir: /var/lib/mysql
repository: file:///var/backups/backupctl
schedule:
  full: "0 2 * * *"
  binlog: "0 * * * *"
retention:
  full: 30d
  binlog: 7d
objectives:
  rpo: 1h
  rto: 4h
"""

# (name, text replacing GOOD, expected "line field" fragments, expected message fragment)
CASES = [
    (
        "bad-yaml",
        GOOD.replace("  port: 3306", "  port: [3306"),
        [":7 invalid YAML"],
        "expected ',' or ']'",
    ),
    ("wrong-type", GOOD.replace("port: 3306", "port: many"), [":6 connection.port:"], "integer"),
    ("unknown-key", GOOD.replace("datadir:", "datadri:"), [":9 datadri:"], "unknown field"),
    (
        "unknown-nested-key",
        GOOD.replace("  rpo: 1h", "  rop: 1h"),
        [":18 objectives.rop:"],
        "unknown field",
    ),
    (
        "missing-field",
        GOOD.replace("datadir: /var/lib/mysql\n", ""),
        [":1 datadir:"],
        "required field is missing",
    ),
    (
        "repositories-and-repository",
        GOOD.replace(
            "repository: file:///var/backups/backupctl",
            "repository: file:///var/backups/backupctl\nrepositories: [{name: a, url: file:///a}]",
        ),
        [":1 "],
        "give either repository or repositories, not both",
    ),
    (
        "repositories-same-name",
        GOOD.replace(
            "repository: file:///var/backups/backupctl",
            "repositories:\n- {name: a, url: file:///a}\n- {name: a, url: s3://bucket/b}",
        ),
        [":1 "],
        "repositories: names must differ, a repeats",
    ),
    (
        "repositories-bad-retention",
        GOOD.replace(
            "repository: file:///var/backups/backupctl",
            "repositories:\n- {name: a, url: file:///a, retention: {full: soon}}",
        ),
        [":1 "],
        "repositories: a: retention.full: expected a duration",
    ),
    (
        "repositories-unnamed",
        GOOD.replace(
            "repository: file:///var/backups/backupctl",
            "repositories:\n- {url: file:///a}",
        ),
        [":11 repositories[0].name:"],
        "required field is missing",
    ),
    (
        "incremental-without-full",
        GOOD.replace('  full: "0 2 * * *"', '  incremental: "0 2 * * 1-6"'),
        [":11 schedule:"],
        "an incremental schedule needs a full one",
    ),
    (
        "max-chain-of-one",
        GOOD + "backup:\n  max_chain: 1\n",
        [":21 backup.max_chain:"],
        "greater than or equal to 2",
    ),
    (
        "bad-duration",
        GOOD.replace("full: 30d", "full: thirty"),
        [":15 retention.full:"],
        "expected a duration like 30d",
    ),
    (
        "bad-cron",
        GOOD.replace('full: "0 2 * * *"', 'full: "0 25 * * *"'),
        [":12 schedule.full:"],
        "invalid cron expression",
    ),
    (
        "bad-cron-fields",
        GOOD.replace('binlog: "0 * * * *"', 'binlog: "every hour"'),
        [":13 schedule.binlog:"],
        "five-field cron",
    ),
    (
        "bad-url",
        GOOD.replace("file:///var/backups/backupctl", "ftp://host/x"),
        [":10 repository"],
        "unsupported repository URL",
    ),
    (
        "relative-file-url",
        GOOD.replace("file:///var/backups/backupctl", "file://backups"),
        [":10 repository"],
        "must be absolute",
    ),
    (
        "missing-secret",
        GOOD.replace("{secret}", "/nonexistent/secret"),
        [":8 connection.password_file:"],
        "does not exist",
    ),
    (
        "unknown-driver",
        GOOD.replace("driver: mariadb", "driver: postgres"),
        [":3 driver:"],
        "expected one of",
    ),
    ("bad-name", GOOD.replace("name: shop-db", "name: ../../etc"), [":2 name:"], "policy names"),
    (
        "duplicate-key",
        GOOD.replace("datadir: /var/lib/mysql", "datadir: /a\ndatadir: /b"),
        [":10 datadir:"],
        "duplicate key",
    ),
    (
        "unset-env",
        GOOD.replace("user: backup", "user: ${BACKUPCTL_TEST_UNSET_VAR}"),
        [":7 connection.user:"],
        "BACKUPCTL_TEST_UNSET_VAR is not set",
    ),
    ("bad-version", GOOD.replace("version: 1", "version: 2"), [":1 version:"], "expected 1"),
    ("empty-file", "", [":1"], "empty"),
    (
        "host-and-socket",
        GOOD.replace("  port: 3306", "  port: 3306\n  socket: /run/x.sock"),
        [":4 connection:"],
        "not both",
    ),
]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("pw\n")
    return path


@pytest.mark.parametrize(("name", "text", "wheres", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_policy_is_reported_with_file_line_and_field(
    tmp_path: Path, secret: Path, name: str, text: str, wheres: list[str], message: str
) -> None:
    policy = tmp_path / f"{name}.yaml"
    policy.write_text(text.replace("{secret}", str(secret)))
    result = run_backupctl(["policy", "validate", str(policy)])
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    for where in wheres:
        assert f"{policy}{where}" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_every_error_of_every_file_is_reported_at_once(tmp_path: Path, secret: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        GOOD.replace("{secret}", str(secret))
        .replace("full: 30d", "full: 30x")
        .replace("port: 3306", "port: 0")
    )
    (tmp_path / "b.yaml").write_text(
        GOOD.replace("{secret}", str(secret))
        .replace("name: shop-db", "name: other")
        .replace("datadir:", "dtadir:")
    )
    result = run_backupctl(["--policies", str(tmp_path), "policy", "validate"])
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(tmp_path))]
    assert any("a.yaml:15 retention.full:" in line for line in lines), lines
    assert any("a.yaml:6 connection.port:" in line for line in lines), lines
    assert any("b.yaml:9 dtadir:" in line for line in lines), lines
    assert any("b.yaml:1 datadir: required" in line for line in lines), lines
    assert "4 problem(s) in 2 policy file(s)" in result.stderr


def test_a_valid_policy_passes_and_env_interpolation_applies(tmp_path: Path, secret: Path) -> None:
    text = GOOD.replace("{secret}", "${BACKUPCTL_TEST_SECRET}").replace(
        "user: backup", "user: ${BACKUPCTL_TEST_USER:-backup}"
    )
    (tmp_path / "p.yaml").write_text(text)
    result = run_backupctl(
        ["policy", "validate", "--json", str(tmp_path / "p.yaml")],
        env={"BACKUPCTL_TEST_SECRET": str(secret)},
    )
    assert result.code == 0, result.output
    assert '"name": "shop-db"' in result.stdout


def test_two_policies_with_one_name_are_refused(tmp_path: Path, secret: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(GOOD.replace("{secret}", str(secret)))
    result = run_backupctl(["--policies", str(tmp_path), "policy", "validate"])
    assert result.code == 2
    assert "also defined in" in result.stderr


def test_missing_policy_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run_backupctl(["--policies", str(tmp_path / "nope"), "policy", "validate"])
    assert result.code == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_schema_is_json_schema_for_every_driver() -> None:
    import json

    result = run_backupctl(["policy", "schema"])
    assert result.code == 0
    schema = json.loads(result.stdout)
    text = json.dumps(schema)
    for driver in ("mariadb", "elasticsearch", "model", "config-git"):
        assert f'"{driver}"' in text
    assert schema["discriminator"]["propertyName"] == "driver"


def test_example_policies_validate(tmp_path: Path) -> None:
    """Every example under policies/ is a test."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "shop-db").write_text("pw\n")
    env = {
        "BACKUPCTL_SECRETS": str(secrets),
        "BACKUPCTL_SHOP_DB_PASSWORD": "x",
        "BACKUPCTL_ES_PASSWORD": "y",
    }
    root = Path(__file__).resolve().parents[2] / "policies"
    result = run_backupctl(["--policies", str(root), "policy", "validate"], env=env)
    assert result.code == 0, result.output
    for name in ("shop-db", "search", "llm", "configs"):
        assert f"ok  {name} " in result.stdout


def test_a_model_directory_that_is_missing_is_said_plainly(tmp_path: Path) -> None:
    policy = tmp_path / "llm.yaml"
    policy.write_text(
        "version: 1\nname: llm\ndriver: model\npath: /srv/models/llm\n"
        f"repository: file://{tmp_path / 'repo'}\n"
    )
    result = run_backupctl(
        ["--policies", str(policy), "--state-dir", str(tmp_path / "s"), "backup", "llm"]
    )
    assert result.code == 1
    assert "model directory /srv/models/llm does not exist" in result.stderr
    assert "Traceback" not in result.output
    assert not list((tmp_path / "repo").rglob("manifest.json"))


CONFIG_GIT = """\
version: 1
name: configs
driver: config-git
paths: [/etc/nginx]
repositories:
{repositories}
"""


@pytest.mark.parametrize(
    ("repositories", "message"),
    [
        (
            "- {name: local, url: file:///var/backups/configs.git}\n"
            "- {name: offsite, url: s3://bucket/site-a}\n"
            "- {name: disk, url: file:///mnt/usb/configs, encryption: {key_env: KEY}}",
            None,
        ),
        (
            "- {name: offsite, url: s3://bucket/site-a}\n"
            "- {name: local, url: file:///var/backups/configs.git}",
            "the first one; the copies after it may be s3://",
        ),
        (
            "- {name: local, url: file:///var/backups/configs.git, encryption: {key_env: KEY}}\n"
            "- {name: offsite, url: s3://bucket/site-a}",
            "config-git cannot encrypt",
        ),
        (
            "- {name: local, url: file:///var/backups/configs.git}\n"
            "- {name: inner, url: file:///var/backups/configs.git/backupctl}",
            "repositories: inner: file:///var/backups/configs.git/backupctl is inside the Git",
        ),
        (
            "- {name: local, url: file:///var/backups/configs.git}\n"
            "- {name: offsite, url: s3://bucket/site-a, retention: {full: 7d}}",
            "repositories: offsite: a config-git policy has no retention",
        ),
    ],
    ids=["copies-allowed", "first-not-file", "first-encrypted", "copy-inside-git", "retention"],
)
def test_config_git_copies(tmp_path: Path, repositories: str, message: str | None) -> None:
    """A config-git policy's first repository is its bare Git directory (file://, not
    encrypted); the copies after it hold manifests and history bundles: s3:// or
    file:// elsewhere, encrypted or not."""
    policy = tmp_path / "configs.yaml"
    policy.write_text(CONFIG_GIT.format(repositories=repositories))
    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes, base64
    result = run_backupctl(["policy", "validate", str(policy)], env={"KEY": key})
    assert "Traceback" not in result.output
    if message is None:
        assert result.code == 0, result.output
        return
    assert result.code == 2, result.output
    assert message in result.stderr, result.stderr


def test_an_elasticsearch_copy_has_no_retention_of_its_own(tmp_path: Path) -> None:
    """Copies of snapshots are manifests: a copy kept longer than the snapshots the first
    repository's retention prunes from the cluster would list snapshots that are gone."""
    policy = tmp_path / "search.yaml"
    policy.write_text(
        "version: 1\nname: search\ndriver: elasticsearch\n"
        "connection: {url: 'http://localhost:9200'}\n"
        "snapshot_repository: {name: backups, type: fs, settings: {location: /srv/snap}}\n"
        "repositories:\n"
        "  - {name: local, url: file:///var/backups/backupctl}\n"
        "  - {name: offsite, url: s3://bucket/site-a, retention: {expire_after: 90d}}\n"
    )
    result = run_backupctl(["policy", "validate", str(policy)])
    assert result.code == 2 and "Traceback" not in result.output
    assert "repositories: offsite: retention: an Elasticsearch copy holds the manifests" in (
        result.stderr
    )
