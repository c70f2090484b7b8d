"""Rebuilding a lost server from the off-site copy: ``backupctl dr bootstrap`` against the
per-system restores an operator would run by hand, on a demo-sized stack.

The stack (all on this machine, all private to the benchmark):

- ``shop``: a private ``mariadbd`` with ``--size-mb`` of generated table data, a full
  backup, then transactions shipped as a binlog backup; restore hooks stop and start it;
- ``llm``: a model directory of ``--model-mb`` with two versions (v2 served);
- ``search``: Elasticsearch (the project's in-process test double, ``tests/fakes``) with
  an index of documents and one snapshot in an fs snapshot repository;
- ``configs``: a config-git policy over a few files;
- ``stacks/app.yaml``: the four as one stack (``llm`` and ``search`` in parallel).

Every policy has two repositories: ``local`` (``file://``, on the lost host) and
``offsite`` (``s3://`` on moto's server over HTTP, encrypted with a key made by
``backupctl key generate``).

Each repetition first loses the host: the stop hook stops MariaDB, then the datadir, the
local repositories, the state directory, the policies, hooks, stack file and key, the
served model and the configuration files are deleted, and the Elasticsearch double is
replaced by an empty one (its snapshot repository's files stay, as they live elsewhere).
What survives: the S3 bucket, its credentials, the operator's copy of the key and the
MariaDB password file (the secrets the operator brings). Then one of:

- **by hand**: the policies, hooks, stack file and key are put back from a saved copy
  (outside the timing: what an operator would copy from the runbook's safe), the empty
  datadir is made (as the MariaDB package would), then ``backupctl catalog sync`` and
  one ``backupctl restore POLICY ... --yes --from offsite`` per policy, in the order and
  with the options ``dr bootstrap --dry-run`` plans (configs: ``--at <newest> --target-dir
  D``, then each file copied where it belongs; shop: ``--to-gtid <last GTID>``). The
  figure is the sum of the commands' wall times (the copy of the config files included).
- **dr bootstrap**: ``backupctl dr bootstrap s3://... --endpoint-url ... --key-file ...
  --yes --json`` from nothing, its wall time (and its report's ``rto_seconds``, which
  starts after the setup, catalog and plan).

After each, outside the timing, the data is checked: ``CHECKSUM TABLE`` of every table of
the database and the rows written after the full, the model's tree hash, the document
count, the configuration files' bytes. A mismatch fails the benchmark.

The two are interleaved, the order alternating, after an unmeasured warm-up pair.

``backupctl drill run --stack app --json`` runs twice: on the intact host once the stack
is backed up (its table: the stack RTO, each system's RPO and RTO, the skew), and on the
rebuilt host after the last rebuild (a drill reads the policy's first repository only,
which a rebuilt host has empty until its next backups: see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _common import (  # first: it puts the repository root on sys.path
    BenchServer,
    Timed,
    add_run_args,
    add_warmup_arg,
    base_policy,
    begin,
    bench_server,
    default_backupctl_cmd,
    environment,
    fill_database,
    interleaved,
    mark,
    print_summary,
    rep_label,
    run_backupctl,
    stop_servers_under,
    workdir_cleanup,
    write_results_doc,
)

from backupctl.demo.server import checksum_tables
from backupctl.drivers.models.tree import scan_tree, tree_hash
from tests.support.motoserver import FAKE_CREDENTIALS, REAL_AWS_SETTINGS, moto_server

BENCH_NAME = "rebuild"
BUCKET = "bench-rebuild"
OFFSITE_URL = f"s3://{BUCKET}/site"
TARGET_RATIO = 1.1
DATABASE = "bench"
INDEX = "orders-1"
TOOLS = {"raw": "by hand", "backupctl": "dr bootstrap"}  # interleaved() names -> ours
ORDER = ("configs", "shop", "llm", "search")  # what dr bootstrap plans; checked
MODEL_FILES = 4
MIB = 1 << 20


# --------------------------------------------------------------------------- where things are


@dataclass(frozen=True)
class Layout:
    """The host's files (all under the work directory) and the operator's."""

    workdir: Path

    @property
    def etc(self) -> Path:  # dr bootstrap's --target-root: policies/, hooks/, stacks/, keys/
        return self.workdir / "etc"

    @property
    def policies(self) -> Path:
        return self.etc / "policies"

    @property
    def hooks(self) -> Path:
        return self.etc / "hooks"

    @property
    def key(self) -> Path:  # where the policies read the off-site key
        return self.etc / "keys" / "offsite.key"

    @property
    def saved(self) -> Path:  # the operator's copy of etc/, for the restores by hand
        return self.workdir / "operator" / "etc"

    @property
    def operator_key(self) -> Path:
        return self.workdir / "operator" / "offsite.key"

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    @property
    def repo(self) -> Path:  # the local repository of shop, llm and search
        return self.workdir / "repo"

    @property
    def history(self) -> Path:  # the local repository of configs (a Git directory)
        return self.workdir / "history.git"

    @property
    def served(self) -> Path:
        return self.workdir / "served" / "llm"

    @property
    def config_root(self) -> Path:
        return self.workdir / "etc-app"

    @property
    def es_root(self) -> Path:  # the double's path.repo: survives the host
        return self.workdir / "es-snapshots"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def args(self, *args: str) -> list[str]:
        return ["--policies", str(self.policies), "--state-dir", str(self.state), *args]


def fake_elasticsearch(**kwargs: Any) -> Any:
    """A started ``tests.fakes.elasticsearch.FakeElasticsearch`` (imported by name: the
    double is test code that ``mypy backupctl bench`` does not check)."""
    module = importlib.import_module("tests.fakes.elasticsearch")
    return module.FakeElasticsearch(**kwargs).start()


class EsDouble:
    """The Elasticsearch test double, restartable empty on the same port."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.server = fake_elasticsearch(path_repo=[root])

    @property
    def url(self) -> str:
        return str(self.server.url)

    def restart(self) -> None:
        """A new, empty cluster: indices and registered repositories are gone."""
        port = self.server.port
        self.server.stop()
        self.server = fake_elasticsearch(port=port, path_repo=[self.root])

    def client(self) -> Any:
        from elasticsearch import Elasticsearch

        return Elasticsearch(self.url)


@contextmanager
def es_double(root: Path) -> Iterator[EsDouble]:
    es = EsDouble(root)
    try:
        yield es
    finally:
        es.server.stop()
        if es.server.bugs:
            print("the Elasticsearch double failed internally:\n" + es.server.bugs[0])


@dataclass
class Expected:
    """What every rebuild must bring back."""

    checksums: dict[str, int | None]
    after_full_rows: int
    model_hash: str
    documents: int
    config_files: dict[str, bytes]


@dataclass
class Session:
    layout: Layout
    server: BenchServer
    es: EsDouble
    endpoint: str
    cmd: list[str]
    expected: Expected | None = None
    #: per policy, the options of dr bootstrap's plan (from its dry run)
    plan_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # stored bytes per policy
    waves: list[list[str]] = field(default_factory=list)  # dr's plan: a wave side by side


@dataclass
class RebuildRun:
    tool: str  # "raw" (by hand) or "backupctl" (dr bootstrap)
    repetition: int
    seconds: float  # by hand: the sum of the commands; dr: its wall time
    #: by hand: each command's wall time; dr: each system's seconds from its report
    systems: dict[str, float]
    rto_seconds: float | None = None  # dr only: the report's
    peak_rss_kb: int | None = None  # dr: its process; by hand: the largest command's
    load_before: float = 0.0


# --------------------------------------------------------------------------- commands


def backupctl(s: Session, label: str, *args: str, ok_codes: tuple[int, ...] = (0,)) -> Timed:
    """Run ``backupctl --policies ... --state-dir ... ARGS``; stdout and log under
    ``logs/<label>.{out,log}``. RuntimeError, with the log's tail, on another exit."""
    timed = run_backupctl(
        s.cmd,
        s.layout.args(*args),
        s.layout.logs / f"{label}.out",
        s.layout.logs / f"{label}.log",
    )
    if timed.returncode not in ok_codes:
        out = (s.layout.logs / f"{label}.out").read_text(errors="replace")[-2000:]
        tail = (s.layout.logs / f"{label}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"backupctl {' '.join(args)} exited {timed.returncode}\n{out}\n{tail}")
    return timed


def output_json(s: Session, label: str) -> Any:
    return json.loads((s.layout.logs / f"{label}.out").read_text())


# --------------------------------------------------------------------------- the stack


def two_repositories(s: Session, local: Path) -> list[dict[str, Any]]:
    return [
        {"name": "local", "url": f"file://{local}"},
        {
            "name": "offsite",
            "url": OFFSITE_URL,
            "endpoint_url": s.endpoint,
            "encryption": {"key_file": str(s.layout.key)},
        },
    ]


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def write_setup(s: Session, stop: Path, start: Path) -> None:
    """The four policies and the stack file."""
    lay = s.layout
    shop = base_policy(s.server, lay.repo)
    shop["name"] = "shop"
    del shop["repository"]
    shop["repositories"] = two_repositories(s, lay.repo)
    shop["schedule"] = {"full": "0 2 * * *", "binlog": "0 * * * *"}
    shop["restore"] = {"stop": [str(stop)], "start": [str(start)], "health_timeout": "120s"}
    write_yaml(lay.policies / "shop.yaml", shop)
    write_yaml(
        lay.policies / "llm.yaml",
        {
            "version": 1,
            "name": "llm",
            "driver": "model",
            "path": str(lay.served),
            "version_from": "VERSION",
            "repositories": two_repositories(s, lay.repo),
            "schedule": {"check": "*/15 * * * *"},
            "objectives": {"rpo": "24h", "rto": "1h"},
        },
    )
    write_yaml(
        lay.policies / "search.yaml",
        {
            "version": 1,
            "name": "search",
            "driver": "elasticsearch",
            "connection": {"url": s.es.url},
            "snapshot_repository": {
                "name": "bench-snapshots",
                "type": "fs",
                "settings": {"location": str(lay.es_root / "snapshots")},
            },
            "repositories": two_repositories(s, lay.repo),
            "indices": ["orders-*"],
            "schedule": {"snapshot": "30 2 * * *"},
            "retention": {"expire_after": "30d", "min_count": 1, "max_count": 10},
            "objectives": {"rpo": "24h", "rto": "2h"},
        },
    )
    write_yaml(
        lay.policies / "configs.yaml",
        {
            "version": 1,
            "name": "configs",
            "driver": "config-git",
            "paths": [str(lay.config_root)],
            "repositories": two_repositories(s, lay.history),
        },
    )
    write_yaml(
        lay.etc / "stacks" / "app.yaml",
        {
            "version": 1,
            "name": "app",
            "policies": list(ORDER),
            "parallel": [["llm", "search"]],
            "objectives": {"rto": "1h", "rpo": "24h"},
        },
    )


def write_model(directory: Path, version: str, size_mb: int, rewrite: int | None) -> None:
    """``MODEL_FILES`` weight files of random bytes making ``size_mb`` MiB (all of them, or
    only file ``rewrite``), a config and ``VERSION``."""
    directory.mkdir(parents=True, exist_ok=True)
    each = size_mb * MIB // MODEL_FILES
    for number in range(MODEL_FILES):
        if rewrite is not None and number != rewrite:
            continue
        with open(directory / f"weights-{number:02d}.bin", "wb") as fh:
            for _ in range(0, each, 4 * MIB):
                fh.write(os.urandom(min(4 * MIB, each)))
    (directory / "config.json").write_text(json.dumps({"version": version}))
    (directory / "VERSION").write_text(version + "\n")


def sql(s: Session, *statements: str) -> list[Any]:
    conn = s.server.instance.connect()
    try:
        rows: list[Any] = []
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                rows = list(cur.fetchall())
        conn.commit()
        return rows
    finally:
        conn.close()


def build_stack(s: Session, size_mb: int, model_mb: int, documents: int) -> None:
    """Fill every system, back each up to both repositories; remember what to expect."""
    lay = s.layout
    stop, start = s.server.instance.write_service_hooks(lay.hooks)
    lay.operator_key.parent.mkdir(parents=True)
    backupctl(s, "key-generate", "key", "generate", "--output", str(lay.operator_key))
    lay.key.parent.mkdir(parents=True)
    shutil.copy2(lay.operator_key, lay.key)
    write_setup(s, stop, start)

    # MariaDB: a full, then transactions shipped as binlogs
    fill_database(s.server.instance, DATABASE, size_mb)
    timed = backupctl(s, "backup-shop-full", "backup", "shop", "--json")
    print(f"  shop: full backup {timed.seconds:.1f}s", flush=True)
    sql(s, f"CREATE TABLE {DATABASE}.after_full (id INT PRIMARY KEY, note VARCHAR(40))")
    conn = s.server.instance.connect()
    try:
        with conn.cursor() as cur:
            for batch in range(200):  # 200 transactions of 10 rows
                values = ", ".join(f"({batch * 10 + n}, 'after the full')" for n in range(10))
                cur.execute(f"INSERT INTO {DATABASE}.after_full VALUES {values}")
                conn.commit()
    finally:
        conn.close()
    timed = backupctl(s, "backup-shop-binlog", "backup", "shop", "--type", "binlog", "--json")
    print(f"  shop: binlog backup {timed.seconds:.1f}s", flush=True)
    conn = s.server.instance.connect()
    try:
        checksums = checksum_tables(conn, [DATABASE])
    finally:
        conn.close()
    (count,) = sql(s, f"SELECT COUNT(*) FROM {DATABASE}.after_full")[0]

    # the model: v1, then v2 with one weight file rewritten
    write_model(lay.served, "v1", model_mb, None)
    backupctl(s, "backup-llm-v1", "backup", "llm", "--json")
    write_model(lay.served, "v2", model_mb, 0)
    backupctl(s, "backup-llm-v2", "backup", "llm", "--json")
    model_hash = tree_hash(scan_tree(lay.served))
    print(f"  llm: two versions of {model_mb} MiB backed up", flush=True)

    # search: documents in one snapshot
    es = s.es.client()
    try:
        es.indices.create(index=INDEX, settings={"number_of_replicas": 0})
        operations: list[dict[str, Any]] = []
        for n in range(documents):
            operations += [{"index": {"_index": INDEX}}, {"n": n, "note": f"order {n}"}]
        es.bulk(operations=operations, refresh=True)
    finally:
        es.close()
    backupctl(s, "backup-search", "backup", "search", "--json")

    # configuration files in Git history
    (lay.config_root / "nginx").mkdir(parents=True)
    (lay.config_root / "nginx" / "nginx.conf").write_text("worker_processes 4;\n")
    (lay.config_root / "app.env").write_text("MODE=production\n")
    (lay.config_root / "app.env").chmod(0o640)
    (lay.config_root / "my.cnf").write_text("[mysqld]\ninnodb_buffer_pool_size=256M\n")
    backupctl(s, "backup-configs", "backup", "configs", "--json")
    config_files = {str(p): p.read_bytes() for p in lay.config_root.rglob("*") if p.is_file()}
    print(f"  search: {documents} documents, configs: {len(config_files)} files", flush=True)

    s.expected = Expected(checksums, int(count), model_hash, documents, config_files)
    shutil.copytree(lay.etc, lay.saved)  # what the operator keeps (policies, hooks, key)
    backupctl(s, "list", "list", "--json")
    for manifest in output_json(s, "list"):
        s.sizes[manifest["policy"]] = s.sizes.get(manifest["policy"], 0) + int(
            manifest["stored_bytes"]
        )


# --------------------------------------------------------------------------- losing the host


def lose_host(s: Session) -> None:
    """Everything of the host is gone but the off-site bucket, the ES snapshot storage, the
    operator's key and the password file."""
    lay = s.layout
    stop = lay.saved / "hooks" / "stop.sh"
    subprocess.run([str(stop)], check=True, timeout=120)
    datadir = s.server.instance.datadir
    stop_servers_under(datadir.parent)  # nothing else of ours may run on it
    lost = [datadir, lay.repo, lay.history, lay.state, lay.etc, lay.served.parent]
    lost += [lay.config_root, *datadir.parent.glob(f"{datadir.name}.aside-*")]
    lost += datadir.parent.glob(f".{datadir.name}.*")
    for path in lost:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            raise RuntimeError(f"{path} could not be removed")
    s.es.restart()
    os.sync()


def check_rebuilt(s: Session, label: str) -> None:
    """Everything as at the last recoverable point, else RuntimeError."""
    expected = s.expected
    assert expected is not None
    conn = s.server.instance.connect()
    try:
        checksums = checksum_tables(conn, [DATABASE])
    finally:
        conn.close()
    (count,) = sql(s, f"SELECT COUNT(*) FROM {DATABASE}.after_full")[0]
    problems = []
    if checksums != expected.checksums:
        problems.append(f"table checksums {checksums} != {expected.checksums}")
    if count != expected.after_full_rows:
        problems.append(f"{count} rows after the full, not {expected.after_full_rows}")
    if tree_hash(scan_tree(s.layout.served)) != expected.model_hash:
        problems.append("the model's tree hash differs")
    es = s.es.client()
    try:
        es.indices.refresh(index=INDEX)
        documents = es.count(index=INDEX)["count"]
    finally:
        es.close()
    if documents != expected.documents:
        problems.append(f"{documents} documents, not {expected.documents}")
    files = {str(p): p.read_bytes() for p in s.layout.config_root.rglob("*") if p.is_file()}
    if files != expected.config_files:
        problems.append(f"config files {sorted(files)} != {sorted(expected.config_files)}")
    if problems:
        raise RuntimeError(f"{label}: the rebuild is not right:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------- the two ways


def dry_run_plan(s: Session) -> None:
    """``dr bootstrap --dry-run --json`` once on the lost host: the order and the options
    the restores by hand use."""
    backupctl(s, "dr-dry-run", *dr_args(s), "--dry-run")
    plan = output_json(s, "dr-dry-run")
    order = tuple(system["policy"] for system in plan["systems"])
    if order != ORDER:
        raise RuntimeError(f"dr bootstrap plans {order}, not {ORDER}")
    if plan["needs"]:
        raise RuntimeError(f"dr bootstrap needs: {plan['needs']}")
    s.plan_options = {sys_["policy"]: sys_["plan"]["options"] for sys_ in plan["systems"]}
    s.waves = plan.get("waves") or [[name] for name in order]
    print(f"  dr plan waves: {s.waves}", flush=True)
    print(f"  dr plan options: {json.dumps(s.plan_options)}", flush=True)


def dr_args(s: Session) -> list[str]:
    lay = s.layout
    return [
        "dr",
        "bootstrap",
        OFFSITE_URL,
        "--endpoint-url",
        s.endpoint,
        "--key-file",
        str(lay.operator_key),
        "--json",
    ]


def restore_flags(s: Session, policy: str, config_dir: Path) -> list[str]:
    """The flags of ``backupctl restore POLICY`` that ask for what dr's plan asks."""
    options = {k: v for k, v in s.plan_options[policy].items() if v not in (None, [], {}, False)}
    flags: list[str] = []
    for key, value in options.items():
        if key == "to_gtid":
            flags += ["--to-gtid", str(value)]
        elif key == "to_time":
            flags += ["--to-time", str(value)]
        elif key == "at":
            flags += ["--at", str(value)]
        elif key == "target_dir":
            flags += ["--target-dir", str(config_dir)]
        elif key in ("in_place", "verify_level", "mode"):
            continue  # the defaults of a restore in place
        else:
            raise RuntimeError(f"{policy}: no restore flag for dr's option {key}={value!r}")
    return flags


def place_files(staging: Path) -> None:
    """Each restored file where it belongs (its absolute path below ``staging``)."""
    for source in sorted(p for p in staging.rglob("*") if p.is_file()):
        destination = Path("/") / source.relative_to(staging)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def by_hand(s: Session, rep: int) -> RebuildRun:
    """Put the setup back (untimed), then time catalog sync and each restore."""
    lay = s.layout
    shutil.copytree(lay.saved, lay.etc)
    s.server.instance.datadir.mkdir(mode=0o750)  # the new host's package makes it
    tag = f"{rep}-hand"
    times: dict[str, float] = {}
    rss: list[int] = []
    timed = backupctl(s, f"{tag}-catalog-sync", "catalog", "sync", "--json")
    times["catalog sync"], rss = timed.seconds, [timed.peak_rss_kb or 0]
    config_dir = lay.state / "by-hand" / "configs"
    for policy in ORDER:
        flags = restore_flags(s, policy, config_dir)
        label = f"{tag}-restore-{policy}"
        argv = ["restore", policy, *flags, "--yes", "--from", "offsite", "--json"]
        timed = backupctl(s, label, *argv)
        seconds = timed.seconds
        report = output_json(s, label)
        if not report.get("passed", False):
            raise RuntimeError(f"{label}: restore did not pass: {report.get('error')}")
        if "--target-dir" in flags:
            started = time.perf_counter()
            place_files(config_dir)
            seconds += time.perf_counter() - started
        times[policy] = round(seconds, 3)
        rss.append(timed.peak_rss_kb or 0)
    return RebuildRun("raw", rep, round(sum(times.values()), 3), times, None, max(rss))


def dr_bootstrap(s: Session, rep: int) -> RebuildRun:
    label = f"{rep}-dr-bootstrap"
    timed = backupctl(s, label, *dr_args(s), "--yes")
    report = output_json(s, label)
    if not report["passed"]:
        raise RuntimeError(f"{label}: the rebuild failed: {report['systems']}")
    systems = {system["policy"]: float(system["seconds"]) for system in report["systems"]}
    return RebuildRun(
        "backupctl",
        rep,
        round(timed.seconds, 3),
        systems,
        float(report["rto_seconds"]),
        timed.peak_rss_kb,
    )


def bench_rebuilds(s: Session, repeat: int, warmup: bool) -> list[RebuildRun]:
    runs = []
    for rep, tool in interleaved(repeat, warmup):
        lose_host(s)
        load = os.getloadavg()[0]
        run = by_hand(s, rep) if tool == "raw" else dr_bootstrap(s, rep)
        run.load_before = load
        check_rebuilt(s, f"{rep_label(rep)} {TOOLS[tool]}")
        runs.append(run)
        detail = ", ".join(f"{name} {sec:.1f}" for name, sec in run.systems.items())
        rto = f", RTO {run.rto_seconds:.1f}" if run.rto_seconds is not None else ""
        print(
            f"  {rep_label(rep)} {TOOLS[tool]:12s} {run.seconds:7.2f}s ({detail}){rto}"
            f" [load {load:.1f}]",
            flush=True,
        )
    return runs


def stack_drill(s: Session, label: str) -> dict[str, Any]:
    """``drill run --stack app --json`` once (exit 3, an objective missed or a drill that
    could not start, is a result, not an error)."""
    timed = backupctl(s, label, "drill", "run", "--stack", "app", "--json", ok_codes=(0, 3))
    result: dict[str, Any] = output_json(s, label)
    return {"exit": timed.returncode, "seconds": round(timed.seconds, 3), "report": result}


# --------------------------------------------------------------------------- figures


def measured_runs(runs: list[RebuildRun], tool: str) -> list[RebuildRun]:
    return [r for r in runs if r.tool == tool and r.repetition > 0]


def median(values: list[float]) -> float:
    return round(float(statistics.median(values)), 3)


def summary(runs: list[RebuildRun]) -> dict[str, Any]:
    hand, dr = measured_runs(runs, "raw"), measured_runs(runs, "backupctl")
    hand_median = median([r.seconds for r in hand])
    dr_median = median([r.seconds for r in dr])
    keys = ["catalog sync", *ORDER]
    return {
        "by_hand_median_s": hand_median,
        "by_hand_range_s": [min(r.seconds for r in hand), max(r.seconds for r in hand)],
        "dr_median_s": dr_median,
        "dr_range_s": [min(r.seconds for r in dr), max(r.seconds for r in dr)],
        "ratio": round(dr_median / hand_median, 3),
        "dr_rto_median_s": median([r.rto_seconds or 0.0 for r in dr]),
        "dr_outside_rto_median_s": median([r.seconds - (r.rto_seconds or 0.0) for r in dr]),
        "by_hand_step_medians_s": {
            k: median([r.systems[k] for r in hand if k in r.systems]) for k in keys
        },
        "dr_system_medians_s": {k: median([r.systems[k] for r in dr]) for k in ORDER},
        "dr_peak_rss_mb": round(max(r.peak_rss_kb or 0 for r in dr) / 1024, 1),
        "by_hand_peak_rss_mb": round(max(r.peak_rss_kb or 0 for r in hand) / 1024, 1),
    }


def drill_rows(drill: dict[str, Any]) -> list[str]:
    """The stack drill's table: stack RTO and skew, each system's point, RPO and RTO."""
    report = drill["report"]
    lines = [
        f"stack drill: exit {drill['exit']}, {drill['seconds']:.1f} s wall;"
        f" stack RTO {fmt_opt(report.get('rto_seconds'))} s,"
        f" skew {fmt_opt(report.get('skew_seconds'))} s, passed {report.get('passed')}",
        "",
        "| system | recovery point | RPO s | RTO s | passed |",
        "|---|---|---:|---:|---|",
    ]
    for system in report.get("systems", []):
        lines.append(
            f"| {system.get('policy')} | {system.get('recovery_point') or '-'} "
            f"| {fmt_opt(system.get('rpo_seconds'))} | {fmt_opt(system.get('rto_seconds'))} "
            f"| {system.get('passed')} |"
        )
    lines += [f"- missed: {m}" for m in report.get("missed", [])]
    return lines


def fmt_opt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def tables(summ: dict[str, Any], drills: dict[str, dict[str, Any]]) -> str:
    hand, dr = summ["by_hand_step_medians_s"], summ["dr_system_medians_s"]
    lines = [
        "| rebuild | median s (min-max) | ratio to by hand |",
        "|---|---:|---:|",
        f"| by hand: catalog sync + 4 restores (sum) | {summ['by_hand_median_s']:.2f} "
        f"({summ['by_hand_range_s'][0]:.2f}-{summ['by_hand_range_s'][1]:.2f}) | 1 |",
        f"| `dr bootstrap` (wall) | {summ['dr_median_s']:.2f} "
        f"({summ['dr_range_s'][0]:.2f}-{summ['dr_range_s'][1]:.2f}) | {summ['ratio']:.3f} |",
        f"| `dr bootstrap`: its report's RTO | {summ['dr_rto_median_s']:.2f} | |",
        "",
        "| system | by hand median s (one command) | dr bootstrap median s (report) |",
        "|---|---:|---:|",
        f"| catalog sync | {hand['catalog sync']:.2f} | (inside the report's RTO with the setup "
        f"and the plan; start-up and the report outside it: "
        f"{summ['dr_outside_rto_median_s']:.2f}) |",
        *(f"| {k} | {hand[k]:.2f} | {dr[k]:.2f} |" for k in ORDER),
        "",
        "On the intact host, before it was lost:",
        "",
        *drill_rows(drills["before_loss"]),
        "",
        "On the rebuilt host, after the last rebuild:",
        "",
        *drill_rows(drills["after_rebuild"]),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="MariaDB table data, MB")
    parser.add_argument("--model-mb", type=int, default=100, help="model size, MiB")
    parser.add_argument("--documents", type=int, default=5000, help="Elasticsearch documents")
    parser.add_argument("--repeat", type=int, default=3, help="measured pairs (default 3)")
    add_warmup_arg(parser, "skip the unmeasured warm-up pair")
    add_run_args(parser, holds="the servers, repositories, state and logs", results=BENCH_NAME)
    return parser.parse_args(argv)


def aws_env(workdir: Path) -> dict[str, str]:
    """Fake credentials, nothing that could reach a real account; moto's spool in the
    work directory. Set in this process too, so every backupctl inherits it."""
    for name in REAL_AWS_SETTINGS:
        os.environ.pop(name, None)
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_CONFIG_FILE"] = str(workdir / "aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(workdir / "aws-credentials")
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp)}


def code_fingerprint() -> str:
    """sha256 over backupctl's sources: the checkout is shared, and a figure measured while
    someone edits ``backupctl/`` mixes versions (each backupctl process imports anew)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1] / "backupctl"
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def make_bucket(endpoint: str) -> None:
    import boto3

    boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1"
    ).create_bucket(Bucket=BUCKET)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir, json_out = begin(args, BENCH_NAME)
    layout = Layout(workdir)
    layout.logs.mkdir()
    env_for_moto = aws_env(workdir)
    with workdir_cleanup(workdir, args.keep, "the servers were stopped"):
        with (
            moto_server(workdir / "moto.log", env_for_moto) as (_moto, endpoint),
            es_double(layout.es_root) as es,
            bench_server(workdir, args.buffer_pool) as server,
        ):
            env = environment(server.instance, default_backupctl_cmd(), workdir)
            env["backupctl_sources_sha256"] = code_fingerprint()
            make_bucket(endpoint)
            s = Session(layout, server, es, endpoint, default_backupctl_cmd())
            started = time.monotonic()
            build_stack(s, args.size_mb, args.model_mb, args.documents)
            print(f"  stack built in {time.monotonic() - started:.0f}s", flush=True)
            drills = {"before_loss": stack_drill(s, "drill-stack-before-loss")}
            lose_host(s)
            dry_run_plan(s)
            runs = bench_rebuilds(s, args.repeat, args.warmup)
            drills["after_rebuild"] = stack_drill(s, "drill-stack-after-rebuild")
        summ = summary(runs)
        after = code_fingerprint()
        if after != env["backupctl_sources_sha256"]:
            env["backupctl_sources_sha256_at_end"] = after
            print("WARNING: backupctl's sources changed during the run: the figures mix versions")
        write_results_doc(
            json_out,
            BENCH_NAME,
            args,
            {"ratio_max": TARGET_RATIO},
            env,
            stored_bytes=s.sizes,
            dr_waves=s.waves,
            summary=summ,
            stack_drills=drills,
            runs=[asdict(r) for r in runs],
        )
    verdict = [
        f"dr bootstrap / sum of restores by hand <= {TARGET_RATIO}: "
        f"{mark(summ['ratio'] <= TARGET_RATIO)} ({summ['dr_median_s']:.2f} s / "
        f"{summ['by_hand_median_s']:.2f} s = {summ['ratio']:.3f})"
    ]
    print_summary(tables(summ, drills), verdict, json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
