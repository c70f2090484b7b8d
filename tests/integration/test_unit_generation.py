"""``backupctl systemd generate`` and ``backupctl cron``: units that systemd accepts
(``systemd-analyze verify`` when installed), crontab lines, and the examples in deploy/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.model_policies import model_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "systemd" / "generated-example"
CRON_EXAMPLE = ROOT / "deploy" / "cron" / "backupctl"
BACKUPCTL = str(Path(sys.executable).parent / "backupctl")
EXAMPLE_BACKUPCTL = "/opt/backupctl/.venv/bin/backupctl"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    model_policy(directory, "llm", tmp_path / "m", tmp_path / "repo", {"check": "*/15 * * * *"})
    (directory / "etc.yaml").write_text(
        "version: 1\nname: etc\ndriver: config-git\npaths: [/etc/hosts]\n"
        f"repository: file://{tmp_path / 'etc.git'}\n"
        'schedule: {check: "0 9 * * 1-5", timezone: Europe/Berlin}\n'
    )
    (directory / "db.yaml").write_text(
        "version: 1\nname: db\ndriver: mariadb\nconnection: {host: 127.0.0.1}\n"
        f"datadir: /var/lib/mysql\nrepository: file://{tmp_path / 'repo'}\n"
        'schedule: {full: "0 0 13 * 5", binlog: continuous}\n'
    )
    return directory


def test_generate_writes_a_service_and_timer_per_job(
    tmp_path: Path, policies: Path, backupctl: Any
) -> None:
    out = tmp_path / "units"
    args = ["systemd", "generate", "--output", str(out), "--randomized-delay", "15m"]
    result = backupctl(*args, "--backupctl", BACKUPCTL, policies=policies)
    assert result.code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        f"backupctl-{job}.{suffix}"
        for job in ("db-drill", "db-full", "etc-check", "etc-drill", "llm-check", "llm-drill")
        for suffix in ("service", "timer")
    ]
    service = (out / "backupctl-llm-check.service").read_text()
    assert "Type=oneshot\n" in service
    state = backupctl.state_dir.absolute()
    assert (
        f"ExecStart={BACKUPCTL} --policies {policies.absolute()} --state-dir {state} "
        "--log-format json backup llm --type version\n"
    ) in service
    drill = (out / "backupctl-llm-drill.service").read_text()
    assert "Description=backupctl recovery drill of policy llm\n" in drill
    assert " --log-format json drill run llm\n" in drill
    assert "NoNewPrivileges=true\n" in service and "ProtectSystem=full\n" in service
    assert f"ReadWritePaths=-{state} -{tmp_path / 'repo'}\n" in service
    timer = (out / "backupctl-llm-check.timer").read_text()
    assert "OnCalendar=*-*-* *:00/15:00\n" in timer
    assert "Persistent=true\n" in timer and "RandomizedDelaySec=15m\n" in timer
    berlin = (out / "backupctl-etc-check.timer").read_text()
    assert "OnCalendar=Mon..Fri *-*-* 09:00:00 Europe/Berlin\n" in berlin
    either = (out / "backupctl-db-full.timer").read_text()  # day 13 or a Friday, as cron
    assert "OnCalendar=*-*-13 00:00:00\nOnCalendar=Fri *-*-* 00:00:00\n" in either
    assert "backupctl-binlog-follow@db.service" in result.stdout
    assert "systemctl enable --now backupctl-db-full.timer" in result.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_generated_units_pass_systemd_analyze_verify(
    tmp_path: Path, policies: Path, backupctl: Any
) -> None:
    out = tmp_path / "units"
    result = backupctl(
        "systemd", "generate", "-o", str(out), "--backupctl", BACKUPCTL, policies=policies
    )
    assert result.code == 0, result.output
    units = sorted(str(p) for p in out.iterdir())
    verify = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout + verify.stderr == ""  # not even a warning


def test_bad_randomized_delay_is_a_usage_error(policies: Path, backupctl: Any) -> None:
    args = ["systemd", "generate", "-o", "/tmp/x", "--randomized-delay", "soon"]
    result = backupctl(*args, policies=policies)
    assert result.code == 2 and "expected a duration" in result.stderr


def test_cron_prints_equivalent_lines(policies: Path, backupctl: Any) -> None:
    result = backupctl("cron", "--backupctl", "/usr/bin/backupctl", policies=policies)
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    head = f"/usr/bin/backupctl --policies {policies.absolute()} --state-dir "
    head += f"{backupctl.state_dir.absolute()} --log-format json --quiet backup"
    assert f"0 0 13 * 5 root {head} db --type full" in lines
    assert f"*/15 * * * * root {head} llm --type version" in lines
    berlin = lines.index("CRON_TZ=Europe/Berlin")
    assert lines[berlin + 1] == f"0 9 * * 1-5 root {head} etc --type commit"
    assert any("binlog follow db" in line for line in lines if line.startswith("#"))


def _in_root(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run backupctl from the project root with the example policies' secrets, and no
    BACKUPCTL_* settings of the caller's (the examples use the default locations)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPCTL_")}
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "shop-db").write_text("pw\n")
    env.update(
        BACKUPCTL_SECRETS=str(secrets),
        BACKUPCTL_SHOP_DB_PASSWORD="x",
        BACKUPCTL_ES_PASSWORD="y",
    )
    return subprocess.run(
        [sys.executable, "-m", "backupctl", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(Path("/etc/backupctl/policies").exists(), reason="host policies exist")
def test_deploy_examples_are_what_the_example_policies_generate(tmp_path: Path) -> None:
    """deploy/systemd/generated-example and deploy/cron/backupctl come from policies/:
    regenerate them with the commands in deploy/systemd/generated-example/README.md."""
    out = tmp_path / "units"
    args = ["--randomized-delay", "5m", "--backupctl", EXAMPLE_BACKUPCTL]
    generate = _in_root(["systemd", "generate", "-o", str(out), *args], tmp_path)
    assert generate.returncode == 0, generate.stderr
    expected = {p.name: p.read_text() for p in out.iterdir()}
    shipped = {p.name: p.read_text() for p in EXAMPLE.glob("backupctl-*")}
    assert shipped == expected
    cron = _in_root(["cron", "--backupctl", EXAMPLE_BACKUPCTL], tmp_path)
    assert cron.returncode == 0, cron.stderr
    assert CRON_EXAMPLE.read_text() == cron.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_scheduler_and_run_due_units_pass_verify(tmp_path: Path) -> None:
    names = ["backupctl-scheduler.service", "backupctl-run-due.service", "backupctl-run-due.timer"]
    for name in names:  # pointed at this checkout's backupctl: verify checks ExecStart
        text = (ROOT / "deploy" / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace(EXAMPLE_BACKUPCTL, BACKUPCTL))
    verify = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stderr
