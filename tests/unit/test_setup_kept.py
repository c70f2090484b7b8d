"""What a new host needs is kept in the repository: the policy file (inline secrets
redacted, ``${VAR}`` references kept), the hooks beside it with their modes, and the
encryption key's identifier (never the key); written again only when something changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_a_new_host_gets_the_setup_back_and_nothing_is_overwritten(tmp_path: Path) -> None:
    from backupctl.errors import UsageError
    from backupctl.operations.dr_setup import (
        install_key,
        kept_setups,
        key_files_for,
        read_policy_texts,
        recover_setup,
    )

    key = tmp_path / "old" / "repo.key"
    key.parent.mkdir()
    write_key_file(key, generate_key())
    policies = tmp_path / "old" / "policies"
    policies.mkdir()
    (policies / "search.yaml").write_text(POLICY.format(repo=tmp_path / "repo", key=key))
    (tmp_path / "old" / "hooks").mkdir()
    hook = tmp_path / "old" / "hooks" / "reopen.sh"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o750)
    (tmp_path / "old" / "stacks").mkdir()
    stack = "version: 1\nname: app\npolicies: [search]\n"
    (tmp_path / "old" / "stacks" / "app.yaml").write_text(stack)
    (policy,) = load_policies(policies)
    repo = LocalRepository(tmp_path / "kept")
    keep_setup(repo, policy)

    new = tmp_path / "new"
    setups = kept_setups(repo)
    assert [s.policy for s in setups] == ["search"]
    (recovered,) = recover_setup(repo, setups, new, write=True)
    assert recovered.redacted == ["password"] and recovered.written
    assert (new / "policies" / "search.yaml").read_text() == (
        (tmp_path / "kept" / "search" / "setup" / "policy" / "search.yaml").read_text()
    )
    assert (new / "hooks" / "reopen.sh").stat().st_mode & 0o777 == 0o750
    assert (new / "stacks" / "app.yaml").read_text() == stack
    # the key goes where the policy reads it, and only there
    texts = read_policy_texts([recovered], repo)
    assert key_files_for(texts, f"file://{tmp_path / 'repo'}") == [key]
    assert key_files_for(texts, "s3://elsewhere/x") == []
    given = tmp_path / "operator.key"
    given.write_bytes(key.read_bytes())
    key.unlink()
    assert install_key(given, [key], write=True) == [key]
    assert key.stat().st_mode & 0o777 == 0o600

    # run again: the same files are found identical; another file there stops it
    (again,) = recover_setup(repo, setups, new, write=True)
    assert not again.written and not again.hooks
    (new / "hooks" / "reopen.sh").write_text("#!/bin/sh\nlocal change\n")
    with pytest.raises(UsageError, match="exists with other content"):
        recover_setup(repo, setups, new, write=False)
