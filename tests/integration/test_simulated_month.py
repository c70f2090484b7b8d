"""A month of unattended nights, simulated: ``run-due`` every hour of ``BACKUPCTL_SIM_DAYS``
days (2 in CI; the campaign is 35: ``BACKUPCTL_SIM_DAYS=35 pytest
tests/integration/test_simulated_month.py``) with backupctl's clock moved ahead, against a real
mariadbd taking writes between the ticks (its clock moved along by libfaketime, so every
binlog event, the Rotate events included, carries the simulated time) and a model checked
every 15 minutes. At every day boundary ``status`` is right and promtool, evaluating
deploy/prometheus's rules over the metrics exported then, fires exactly the alerts due
(BackupctlNeverSucceeded before the first night's full backup, nothing after); at the end
the repository and the catalog hold the history retention promises (no more, no less), no
binlog job was skipped because of a full backup, nothing is left in the state directory,
and a restore to a random transaction inside the window brings back exactly the rows
written by then. ``BACKUPCTL_SIM_REPORT=FILE`` writes the run's figures there as JSON
(bench/soak_month.sh).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import model_policy, write_model
from tests.support.policies import restorable_policy
from tests.support.promtool import check_alerts, firing_case

DAYS = int(os.environ.get("BACKUPCTL_SIM_DAYS", "2"))  # at least 2: retention has to act
# the plans' schedules; retention scaled down in a short run so that pruning happens
FULL_KEEP, BINLOG_KEEP = (30, 7) if DAYS > 30 else (1, 1)
RPO = timedelta(hours=2)


def _at(moment: datetime) -> dict[str, str]:
    """The environment that runs backupctl's whole clock (what is due, what backups and
    prunes record and decide by) at ``moment``."""
    return {"BACKUPCTL_CLOCK_OFFSET": str((moment - datetime.now(UTC)).total_seconds())}


class ServerClock:
    """A mariadbd's wall clock under libfaketime (Debian package libfaketime), moved by
    rewriting the offset file it reads on every call; its monotonic clock stays real."""

    def __init__(self, directory: Path) -> None:
        libraries = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
        if not libraries:
            message = "libfaketime is not installed: apt-get install libfaketime"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.file = directory / "faketime"
        self.file.write_text("+0s\n")
        self.environment = {
            "LD_PRELOAD": str(libraries[0]),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "DONT_FAKE_MONOTONIC": "1",
        }

    def set(self, moment: datetime) -> None:
        seconds = round((moment - datetime.now(UTC)).total_seconds())
        self.file.write_text(f"{seconds:+d}s\n")


def _no_other_clients(server: MariaDBServer) -> None:
    """End every client connection but this one (a finished binlog backup's dump thread
    may linger server-side): under libfaketime a server with a client connection open can
    miss the stop hook's minute to shut down; a real server is not affected."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE id <> CONNECTION_ID() AND command <> 'Daemon'"
            )
            for (thread,) in cur.fetchall():
                with contextlib.suppress(Exception):  # it may have ended meanwhile
                    cur.execute(f"KILL CONNECTION {int(thread)}")
    finally:
        conn.close()


def test_a_month_of_nights(
    fresh_mariadb: MariaDBServer,
    tmp_path: Path,
    backupctl: Any,
    monkeypatch: pytest.MonkeyPatch,
):
    assert DAYS >= 2, "BACKUPCTL_SIM_DAYS: at least 2 (one night's full must expire)"
    began = time.monotonic()
    server = fresh_mariadb
    clock = ServerClock(tmp_path)
    server.instance.stop()
    with monkeypatch.context() as env:  # only the server runs on the moved clock
        for name, value in clock.environment.items():
            env.setenv(name, value)
        server.instance.start()
    policy_path = restorable_policy(tmp_path, server)
    policies = policy_path.parent
    data = yaml.safe_load(policy_path.read_text())
    data["schedule"] = {"full": "0 2 * * *", "binlog": "0 * * * *", "timezone": "UTC"}
    data["retention"] = {"full": f"{FULL_KEEP}d", "binlog": f"{BINLOG_KEEP}d"}
    data["objectives"] = {"rpo": f"{RPO.seconds // 3600}h", "rto": "1h"}
    policy_path.write_text(yaml.safe_dump(data))
    model_dir = write_model(tmp_path / "model", "v1")
    model_policy(
        policies,
        "llm",
        model_dir,
        tmp_path / "repo",
        {"check": "*/15 * * * *", "timezone": "UTC"},
        retention={"keep_versions": 5},
    )
    server.sql("CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, at BIGINT)")
    writer = server.connect()
    rng = random.Random(20261204)

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    written: list[tuple[int, str, datetime]] = []  # (row id, the GTID that wrote it, when)
    tick_seconds: list[float] = []

    def tick(moment: datetime) -> Any:
        clock.set(moment)
        began = time.monotonic()
        result = backupctl("run-due", "--json", policies=policies, env=_at(moment))
        tick_seconds.append(time.monotonic() - began)
        assert result.code == 0, result.output
        return json.loads(result.stdout)

    def write(moment: datetime, rows: int) -> None:
        clock.set(moment)  # the server stamps rows and binlog events with its own clock
        with writer.cursor() as cur:
            for _ in range(rows):
                row = len(written) + 1
                cur.execute("INSERT INTO shop.t VALUES (%s, UNIX_TIMESTAMP())", (row,))
                cur.execute("SELECT @@last_gtid")
                written.append((row, cur.fetchone()[0], moment))

    tick(start - timedelta(minutes=30))  # first sight: every job waits for its first slot
    first_run = start + timedelta(minutes=1)
    ran: list[dict[str, Any]] = []
    alert_cases: list[dict[str, Any]] = []
    for hour in range(DAYS * 24):
        moment = start + timedelta(hours=hour)
        write(moment - timedelta(minutes=20), rng.randint(1, 5))
        if hour % 6 == 0:  # a new model version now and then
            write_model(model_dir, f"v{hour // 6 + 2}")
        ran += tick(moment + timedelta(minutes=1))["ran"]
        if moment.hour != 0 or not hour:
            continue
        # a day boundary, looked at a few minutes after the hour's jobs
        probe = moment + timedelta(minutes=5)
        clock.set(probe)
        status = backupctl("status", "shop", "--json", policies=policies, env=_at(probe))
        (shop,) = json.loads(status.stdout)
        exported = backupctl("metrics", policies=policies, env=_at(probe))
        assert exported.code == 0, exported.output
        if any(r["job"] == "shop:full" and r["outcome"] == "ok" for r in ran):
            # every backup succeeded, the chain is whole and the newest binlog is minutes old
            assert shop["problems"] == [], (probe, shop["problems"])
            assert shop["verdict"] == "ok", shop
            firing = {}
        else:  # before the first night's full backup nothing is restorable: said so
            assert shop["verdict"] == "breach", shop
            assert "nothing is recoverable" in shop["problems"][0]["message"]
            firing = {"BackupctlNeverSucceeded": 1} if probe - first_run > RPO else {}
        alert_cases.append(
            firing_case(f"{probe:%Y-%m-%d %H:%M}", exported.stdout, probe.timestamp(), firing)
        )
    end = start + timedelta(hours=DAYS * 24)

    # promtool, over what Prometheus would have scraped at each day boundary
    alerts = check_alerts(tmp_path / "promtool", alert_cases)
    assert alerts.returncode == 0, alerts.stdout + alerts.stderr

    outcomes = {(r["job"], r["outcome"]) for r in ran}
    assert ("shop:binlog", "skipped") not in outcomes  # never waits for a full backup
    assert not [r for r in ran if r["outcome"] == "failed"], ran
    fulls_taken = [r for r in ran if r["job"] == "shop:full" and r["outcome"] == "ok"]
    assert len(fulls_taken) == DAYS

    env = _at(end)
    listed = json.loads(backupctl("list", "shop", "--json", policies=policies, env=env).stdout)
    fulls = sorted(b["finished_at"] for b in listed if b["kind"] == "full")
    binlogs = sorted(b["finished_at"] for b in listed if b["kind"] == "binlog")
    # what retention promises: the fulls of the last FULL_KEEP days (and the one the
    # window starts from), the binlogs after it; nothing older
    horizon = end - timedelta(days=FULL_KEEP + 1)
    assert fulls and all(datetime.fromisoformat(f) >= horizon for f in fulls), fulls
    oldest_full = datetime.fromisoformat(fulls[0])
    assert all(datetime.fromisoformat(b) >= oldest_full - timedelta(hours=1) for b in binlogs)
    assert len(binlogs) >= 20  # hourly, for at least the last day
    # ... and no less: every backup taken well inside its retention is still listed
    listed_ids = {b["backup_id"] for b in listed}
    margin = timedelta(hours=2)  # the last prune ran an hour before the end
    keep = {"shop:full": timedelta(days=FULL_KEEP), "shop:binlog": timedelta(days=BINLOG_KEEP)}
    recent = {
        r["backup_id"]
        for r in ran
        if r["outcome"] == "ok"
        and r["job"] in keep
        and r["backup_id"]
        and datetime.fromisoformat(r["due_at"]) > end - keep[r["job"]] + margin
    }
    assert recent and recent <= listed_ids, sorted(recent - listed_ids)
    # the repository holds what the catalog lists, and nothing else of this policy
    repo = tmp_path / "repo" / "shop"
    stored = {p.parent.name for p in repo.rglob("manifest.json")}
    assert stored == {b["backup_id"] for b in listed}
    models = json.loads(backupctl("list", "llm", "--json", policies=policies, env=env).stdout)
    assert len(models) == 5  # keep the last 5 versions

    # a restore to a random transaction inside the window: exactly the rows written by then
    window_rows = [(row, gtid) for row, gtid, at in written if at > oldest_full]
    row, gtid = rng.choice(window_rows)
    # the application stops before the restore (an idle connection left open would also
    # hold up the shutdown of a server under libfaketime)
    writer.close()
    _no_other_clients(server)
    restore_began = time.monotonic()
    restored = backupctl(
        "restore", "shop", "--to-gtid", gtid, "--yes", "--json", policies=policies, env=env
    )
    restore_seconds = time.monotonic() - restore_began
    assert restored.code == 0, restored.output
    assert [r[0] for r in server.sql("SELECT max(id), count(*) FROM shop.t")] == [row]

    state = backupctl.state_dir
    leftovers = (
        [p for p in (state / "work").rglob("*") if p.is_file()] if (state / "work").exists() else []
    )
    assert leftovers == []
    assert not list((state / "scratch").glob("*")) if (state / "scratch").exists() else True

    if report := os.environ.get("BACKUPCTL_SIM_REPORT"):
        Path(report).write_text(
            json.dumps(
                {
                    "simulated_days": DAYS,
                    "retention": {"full_days": FULL_KEEP, "binlog_days": BINLOG_KEEP},
                    "ticks": len(tick_seconds),
                    "runs": {
                        f"{j} {o}": n
                        for (j, o), n in sorted(
                            Counter((r["job"], r["outcome"]) for r in ran).items()
                        )
                    },
                    "tick_seconds": {
                        "mean": round(sum(tick_seconds) / len(tick_seconds), 2),
                        "max": round(max(tick_seconds), 2),
                    },
                    "rows_written": len(written),
                    "kept": {"full": len(fulls), "binlog": len(binlogs), "model": len(models)},
                    "repository_bytes": sum(
                        p.stat().st_size for p in (tmp_path / "repo").rglob("*") if p.is_file()
                    ),
                    "day_boundaries_checked": len(alert_cases),
                    "restore_seconds": round(restore_seconds, 1),
                    "wall_seconds": round(time.monotonic() - began, 1),
                },
                indent=2,
            )
            + "\n"
        )
