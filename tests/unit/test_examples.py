"""Example hooks and the compose file ship in a state that works."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted((ROOT / "hooks").glob("*.sh"))


@pytest.mark.parametrize("hook", HOOKS, ids=[h.name for h in HOOKS])
def test_hooks_are_executable_shell(hook: Path) -> None:
    assert os.access(hook, os.X_OK), f"{hook} is not executable"
    assert subprocess.run(["sh", "-n", str(hook)], check=False).returncode == 0


def test_model_hooks_judge_a_staged_model(tmp_path: Path) -> None:
    env = {**os.environ, "BACKUPCTL_STAGING": str(tmp_path), "BACKUPCTL_POLICY": "llm"}
    verify = ROOT / "hooks" / "verify-model.sh"
    assert subprocess.run([verify], env=env, capture_output=True).returncode == 1
    (tmp_path / "VERSION").write_text("7\n")
    (tmp_path / "weights.bin").write_bytes(os.urandom(1 << 16))
    assert subprocess.run([verify], env=env, capture_output=True).returncode == 0
    bench = subprocess.run(
        [ROOT / "hooks" / "benchmark-model.sh"], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(bench.stdout)["passed"] is True
    slow = subprocess.run(
        [ROOT / "hooks" / "benchmark-model.sh"],
        env={**env, "MODEL_LOAD_LIMIT_MS": "-1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(slow.stdout)["passed"] is False


def test_compose_file_defines_the_test_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())
    services = compose["services"]
    assert services["mariadb"]["image"].startswith("mariadb:10.11")
    assert "--log-bin=mysql-bin" in services["mariadb"]["command"]
    assert services["elasticsearch"]["environment"]["path.repo"]
    assert services["elasticsearch"]["image"].split(":")[-1].startswith("8.")
    assert services["elasticsearch9"]["image"].split(":")[-1].startswith("9.")
    assert services["elasticsearch9"]["environment"]["path.repo"]
    assert "minio" in services
