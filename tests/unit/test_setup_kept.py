"""What a new host needs is kept in the repository: the policy file (inline secrets
redacted, ``${VAR}`` references kept), the hooks beside it with their modes, and the
encryption key's identifier (never the key); written again only when something changed."""

from __future__ import annotations

import json
from pathlib import Path

from backupctl.operations.setup import keep_setup, redacted_policy_text
from backupctl.policy.loader import load_policies
from backupctl.storage.encryption import generate_key, write_key_file
from backupctl.storage.local import LocalRepository

POLICY = """\
version: 1
name: search
driver: elasticsearch
connection:
  url: https://es.example:9200
  username: elastic
  password: s3cr3t-inline
snapshot_repository: {{name: backups, type: fs, settings: {{location: /srv/snap}}}}
repositories:
  - name: local
    url: file://{repo}
    encryption: {{key_file: {key}}}
indices: ["orders-*"]
"""


def test_redaction_keeps_references_and_drops_values() -> None:
    text, redacted = redacted_policy_text(
        "a:\n  password: hunter2\n  api_key: ${ES_KEY}\n  token: '${T:-x}'\n  user: password\n"
    )
    assert "hunter2" not in text and "  password: REDACTED\n" in text
    assert "api_key: ${ES_KEY}" in text and "token: '${T:-x}'" in text
    assert "user: password" in text
    assert redacted == ["password"]


def test_setup_is_kept_without_secrets_and_only_when_changed(tmp_path: Path) -> None:
    key = tmp_path / "repo.key"
    write_key_file(key, generate_key())
    (tmp_path / "policies").mkdir()
    source = tmp_path / "policies" / "search.yaml"
    source.write_text(POLICY.format(repo=tmp_path / "repo", key=key))
    hooks = tmp_path / "hooks" / "es"
    hooks.mkdir(parents=True)
    (hooks / "reopen.sh").write_text("#!/bin/sh\ncurl -s -XPOST localhost:9200/_all/_open\n")
    (hooks / "reopen.sh").chmod(0o750)
    (policy,) = load_policies(tmp_path / "policies")
    repo = LocalRepository(tmp_path / "kept")

    assert keep_setup(repo, policy) is True
    setup = tmp_path / "kept" / "search" / "setup"
    index = json.loads((setup / "setup.json").read_text())
    kept_policy = (setup / "policy" / "search.yaml").read_text()
    assert "s3cr3t-inline" not in kept_policy and "password: REDACTED" in kept_policy
    assert index["redacted"] == ["password"]
    assert index["hooks"] == [
        {
            "path": "es/reopen.sh",
            "mode": "0o750",
            "sha256": index["hooks"][0]["sha256"],
        }
    ]
    assert (setup / "hooks" / "es" / "reopen.sh").read_bytes() == (hooks / "reopen.sh").read_bytes()
    assert index["key_ids"] == {"local": policy.repository.encryption.key_id()}
    assert key.read_text().strip() not in "".join(
        p.read_text() for p in setup.rglob("*") if p.is_file()
    )

    before = (setup / "setup.json").stat().st_mtime_ns
    assert keep_setup(repo, policy) is False  # nothing changed: nothing written
    assert (setup / "setup.json").stat().st_mtime_ns == before
    (hooks / "reopen.sh").write_text("#!/bin/sh\nexit 0\n")
    assert keep_setup(repo, policy) is True  # a hook changed
    assert (setup / "hooks" / "es" / "reopen.sh").read_text() == "#!/bin/sh\nexit 0\n"
