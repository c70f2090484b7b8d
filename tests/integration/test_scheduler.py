"""``backupctl scheduler`` as a service runs it: jobs fire at their (test: two-second)
slots, SIGHUP loads a new policy, SIGTERM stops it cleanly; every log line is JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.model_policies import model_policy, write_model

EVERY_MINUTE = {"check": "* * * * *", "timezone": "UTC"}


def _state(state_dir: Path) -> dict[str, Any]:
    try:
        text = (state_dir / "schedule" / "state.json").read_text()
    except FileNotFoundError:
        return {}
    jobs: dict[str, Any] = json.loads(text)["jobs"]
    return jobs


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_scheduler_fires_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path) -> None:
    policies, repo, state = tmp_path / "policies", tmp_path / "repo", tmp_path / "state"
    model_policy(policies, "a", write_model(tmp_path / "models" / "a", "v1"), repo, EVERY_MINUTE)
    log_path = tmp_path / "scheduler.log"
    args = ["--policies", str(policies), "--state-dir", str(state), "--log-format", "json"]
    env = {**os.environ, "BACKUPCTL_SCHEDULER_TEST_SECOND": "*/2"}  # a slot every 2 s
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backupctl", *args, "scheduler"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        _wait_for(lambda: _state(state).get("a:check", {}).get("last_outcome") == "ok", "a")
        model_policy(
            policies, "b", write_model(tmp_path / "models" / "b", "v1"), repo, EVERY_MINUTE
        )
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: _state(state).get("b:check", {}).get("last_outcome") == "ok", "b")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]  # all JSON
    events = [line["event"] for line in lines]
    assert events[0] == "jobs scheduled" and "scheduler started" in events
    assert "reloading policies" in events and "policies reloaded" in events
    assert events[-2:] == ["scheduler stopping; waiting for running jobs", "scheduler stopped"]
    finished = [line for line in lines if line["event"] == "job finished"]
    assert {line["job"] for line in finished} == {"a:check", "b:check"}
    assert {line["outcome"] for line in finished} <= {"ok", "unchanged"}
    state_jobs = _state(state)
    assert all(job["running"] is None for job in state_jobs.values())
