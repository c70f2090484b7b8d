"""``policy validate --offline``: CI lints the production policies without their secrets
(files, variables, keys, certificates) and still catches every other mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backupctl.errors import PolicyError
from backupctl.offline import offline
from backupctl.policy.loader import load_policies

POLICY = {
    "version": 1,
    "name": "shop-db",
    "driver": "mariadb",
    "connection": {
        "host": "127.0.0.1",
        "user": "backup",
        "password_file": "/nonexistent/secrets/shop-db",
        "ssl_ca": "/nonexistent/ca.pem",
    },
    "datadir": "/var/lib/mysql",
    "repository": {
        "url": "file:///var/backups/backupctl",
        "encryption": {"key_env": "BACKUPCTL_TEST_UNSET_KEY"},
    },
    "notify": [{"url": "${BACKUPCTL_TEST_UNSET_HOOK}"}],
    "schedule": {"full": "0 2 * * *"},
    "retention": {"full": "30d"},
}


def _write(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "shop-db.yaml"
    path.write_text(yaml.safe_dump({**POLICY, **changes}, sort_keys=False))
    return path


def test_missing_secrets_fail_online_and_pass_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKUPCTL_TEST_UNSET_KEY", raising=False)
    monkeypatch.delenv("BACKUPCTL_TEST_UNSET_HOOK", raising=False)
    path = _write(tmp_path)
    with pytest.raises(PolicyError, match="BACKUPCTL_TEST_UNSET_HOOK"):  # ${VAR}, read first
        load_policies(path)
    monkeypatch.setenv("BACKUPCTL_TEST_UNSET_HOOK", "http://127.0.0.1:9/hook")
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    said = str(caught.value)
    for missing in ("secret file", "BACKUPCTL_TEST_UNSET_KEY"):  # (ssl_ca: checked after)
        assert missing in said
    monkeypatch.delenv("BACKUPCTL_TEST_UNSET_HOOK")
    with offline():
        assert load_policies(path) == []  # no problem; the ${VAR} field left unjudged
        (policy,) = load_policies(_write(tmp_path, notify=[]))
    assert policy.name == "shop-db"
    with pytest.raises(PolicyError):  # the switch does not outlive its block
        load_policies(path)


def test_offline_still_catches_everything_else(tmp_path: Path) -> None:
    path = _write(tmp_path, retention={"full": "thirty days"}, colour="blue")
    with offline(), pytest.raises(PolicyError) as caught:
        load_policies(path)
    fields = {problem.field for problem in caught.value.problems}
    assert "retention.full" in fields and "colour" in fields
    assert not any("secret" in problem.message for problem in caught.value.problems)
