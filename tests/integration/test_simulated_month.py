"""A month of unattended nights, simulated: ``run-due`` every hour of ``BACKUPCTL_SIM_DAYS``
days (2 in CI; the campaign is 35: ``BACKUPCTL_SIM_DAYS=35 pytest
tests/integration/test_simulated_month.py``) with backupctl's clock moved ahead, against a real
mariadbd taking writes between the ticks (stamped with the simulated time through
``SET TIMESTAMP``, so its binlog events carry it too) and a model checked every 15
minutes. At every day boundary ``status`` is right; at the end the repository and the
catalog hold the history retention promises (no more, no less), no binlog job was
skipped because of a full backup, nothing is left in the state directory, and a restore
to a random transaction inside the window brings back exactly the rows written by then.
"""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.support.mariadb import MariaDBServer
from tests.support.model_policies import model_policy, write_model
from tests.support.policies import restorable_policy

DAYS = int(os.environ.get("BACKUPCTL_SIM_DAYS", "2"))
# the plans' schedules; retention scaled down in a short run so that pruning happens
FULL_KEEP, BINLOG_KEEP = (30, 7) if DAYS > 30 else (1, 1)


def _at(moment: datetime) -> dict[str, str]:
    """The environment that runs backupctl's whole clock (what is due, what backups and
    prunes record and decide by) at ``moment``."""
    return {"BACKUPCTL_CLOCK_OFFSET": str((moment - datetime.now(UTC)).total_seconds())}


def test_a_month_of_nights(fresh_mariadb: MariaDBServer, tmp_path: Path, backupctl: Any):
    server = fresh_mariadb
    policy_path = restorable_policy(tmp_path, server)
    policies = policy_path.parent
    data = yaml.safe_load(policy_path.read_text())
    data["schedule"] = {"full": "0 2 * * *", "binlog": "0 * * * *", "timezone": "UTC"}
    data["retention"] = {"full": f"{FULL_KEEP}d", "binlog": f"{BINLOG_KEEP}d"}
    data["objectives"] = {"rpo": "2h", "rto": "1h"}
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

    def tick(moment: datetime) -> Any:
        result = backupctl("run-due", "--json", policies=policies, env=_at(moment))
        assert result.code == 0, result.output
        return json.loads(result.stdout)

    def write(moment: datetime, rows: int) -> None:
        with writer.cursor() as cur:
            cur.execute("SET TIMESTAMP = %s", (int(moment.timestamp()),))
            for _ in range(rows):
                row = len(written) + 1
                cur.execute("INSERT INTO shop.t VALUES (%s, %s)", (row, int(moment.timestamp())))
                cur.execute("SELECT @@last_gtid")
                written.append((row, cur.fetchone()[0], moment))

    tick(start - timedelta(minutes=30))  # first sight: every job waits for its first slot
    ran: list[dict[str, Any]] = []
    for hour in range(DAYS * 24):
        moment = start + timedelta(hours=hour)
        write(moment - timedelta(minutes=20), rng.randint(1, 5))
        if hour % 6 == 0:  # a new model version now and then
            write_model(model_dir, f"v{hour // 6 + 2}")
        ran += tick(moment + timedelta(minutes=1))["ran"]
        if moment.hour == 0 and hour:
            status = backupctl("status", "shop", "--json", policies=policies, env=_at(moment))
            (shop,) = json.loads(status.stdout)
            if any(r["job"] == "shop:full" and r["outcome"] == "ok" for r in ran):
                # every backup succeeded and the chain is whole; the recovery point's age is
                # not judged here: the Rotate event that closes each binlog carries the
                # server's real clock, which SET TIMESTAMP does not move
                messages = [p["message"] for p in shop["problems"]]
                assert all(m.startswith("the newest recoverable point") for m in messages), (
                    moment,
                    messages,
                )
                assert shop["recoverable_from"] is not None
            else:  # before the first night's full backup nothing is restorable: said so
                assert shop["verdict"] == "breach", shop
                assert "nothing is recoverable" in shop["problems"][0]["message"]
    end = start + timedelta(hours=DAYS * 24)

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
    # the repository holds what the catalog lists, and nothing else of this policy
    repo = tmp_path / "repo" / "shop"
    stored = {p.parent.name for p in repo.rglob("manifest.json")}
    assert stored == {b["backup_id"] for b in listed}
    models = json.loads(backupctl("list", "llm", "--json", policies=policies, env=env).stdout)
    assert len(models) == 5  # keep the last 5 versions

    # a restore to a random transaction inside the window: exactly the rows written by then
    window_rows = [(row, gtid) for row, gtid, at in written if at > oldest_full]
    row, gtid = rng.choice(window_rows)
    restored = backupctl(
        "restore", "shop", "--to-gtid", gtid, "--yes", "--json", policies=policies, env=env
    )
    assert restored.code == 0, restored.output
    writer.close()
    assert [r[0] for r in server.sql("SELECT max(id), count(*) FROM shop.t")] == [row]

    state = backupctl.state_dir
    leftovers = (
        [p for p in (state / "work").rglob("*") if p.is_file()] if (state / "work").exists() else []
    )
    assert leftovers == []
    assert not list((state / "scratch").glob("*")) if (state / "scratch").exists() else True
