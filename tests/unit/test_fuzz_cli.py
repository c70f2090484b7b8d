"""Random command lines over the real command tree: every run exits 0, 1, 2 or 3, never
prints a traceback or an internal error, and says why when it fails.

The commands and their options come from click's ``cli`` object, so a new command or
option is fuzzed without touching this file. Values are hostile: ``..`` paths, NUL
bytes, non-UTF-8 bytes (surrogateescape), 1,000-character strings, unicode, negative
and huge numbers, unknown options, missing values, ``--`` in odd places.

Everything runs in a sandbox: one valid policy per driver (MariaDB at a closed port,
Elasticsearch on the in-process test double, a model directory and a config directory
under the sandbox, all repositories ``file://`` in it), the state directory in it,
the working directory five levels deep in it, and every path a command may write to
drawn from inside it (the tests run as root: a fuzzed ``--textfile /dev/null`` would
replace the device). Commands that would not return are given inputs that make them
fail at once (``scheduler`` an invalid ``--misfire-grace``, ``binlog follow`` a policy
that cannot follow) or are left out (``demo``).

``BACKUPCTL_FUZZ_EXAMPLES`` sets the number of command lines (default 200);
``BACKUPCTL_FUZZ_SEED`` picks other ones than the reproducible default.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from backupctl.cli import cli
from backupctl.policy.types import parse_duration
from tests.fuzz.inprocess import problems_with, run_inprocess
from tests.fuzz.values import NASTY_STRINGS
from tests.support.cli import run_backupctl

#: property campaigns over thousands of inputs: seconds each (pytest -m "not slow" skips them)
pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("BACKUPCTL_FUZZ_EXAMPLES", "200"))
SEED = os.environ.get("BACKUPCTL_FUZZ_SEED")
EXIT_CODES = {0, 1, 2, 3}

#: commands that never return on valid input, and how they are kept from starting
LEFT_OUT = {("demo",)}
POLICIES = ("db", "search", "llm", "configs")


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        here = (*path, name)
        if isinstance(command, click.Group):
            found += _commands(command, here)
        elif here not in LEFT_OUT:
            found.append((here, command))
    return found


COMMANDS = _commands(cli)

hostile = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=30))
numbers = st.one_of(
    st.integers(-5, 70000).map(str),
    st.sampled_from(["-1", "0", "1e3", "0x10", "99999999999999999999", "1.5", "", "nan"]),
)
times = st.one_of(
    st.sampled_from(
        [
            "2026-11-22 02:00:00",
            "2026-11-22T02:00:00+00:00",
            "1970-01-01",
            "9999-12-31 23:59:59",
            "0001-01-01",
            "2026-13-45",
            "yesterday",
            "2026-11-22 02:00:00+99:00",
        ]
    ),
    hostile,
)
durations = st.one_of(
    st.sampled_from(["15m", "0", "0s", "1h", "-1m", "1e3s", "99999999999w"]), hostile
)
URLS = ["http://127.0.0.1:9", "", "http://[::1", "http://127.0.0.1:abc", "ftp://127.0.0.1:9"]
URLS += ["http://user:pw@127.0.0.1:9", "a\x00b", "http://127.0.0.1:9/a b", "127.0.0.1:9"]
urls = st.sampled_from(URLS)  # nothing that resolves a name or reaches beyond this host
gtids = st.one_of(st.sampled_from(["0-1-42", "0-1-0", "9-9-99999999999999999999", "1-2"]), hostile)
SEGMENTS = ["..", ".", "x", "new dir", "ü", "-", "--json", "a\nb", "s" * 255, "s" * 300]
SEGMENTS += ["*", "~", "\udcff", "a\x00b", "policies", "state", "etc", "model", "repo"]
#: at most four segments: with the working directory five levels down, even "../../../.."
#: stays in the sandbox
relative_paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map("/".join)
OUTSIDE_READS = ["/dev/null", "/etc/passwd", "/", "/proc/self/status", "/nonexistent-backupctl"]


@dataclass
class Sandbox:
    root: Path
    cwd: Path
    policies: Path
    state: Path
    backup_ids: list[str] = field(default_factory=list)

    def write_paths(self) -> st.SearchStrategy[str]:
        known = ["", str(self.policies), str(self.state), str(self.root / "etc")]
        known += [str(self.root / "model"), str(self.root / "repo"), str(self.root / "new")]
        return st.one_of(
            relative_paths,
            relative_paths.map(lambda rel: f"{self.cwd}/{rel}"),
            st.sampled_from(known),
        )

    def read_paths(self) -> st.SearchStrategy[str]:
        known = [str(self.policies / "db.yaml"), *OUTSIDE_READS]
        return st.one_of(self.write_paths(), st.sampled_from(known))


def _plausible(sb: Sandbox, param: click.Parameter, command: tuple[str, ...]) -> Any:
    """Values a user means: real policies and backup ids, valid times and durations,
    fresh directories in the sandbox."""
    name = param.name or ""
    if name in ("policy", "policies") and isinstance(param, click.Argument):
        names = POLICIES[1:] if command == ("binlog", "follow") else POLICIES  # db never returns
        return st.sampled_from(names)
    fresh = st.integers(0, 10**6).map(lambda n: str(sb.root / "new" / f"d{n}"))
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "backup_id": st.sampled_from(sb.backup_ids),
        "drill_id": st.sampled_from(["20261122T020000Z-abc123", *sb.backup_ids]),
        "kind": st.sampled_from(["full", "binlog", "version", "commit", "snapshot"]),
        "to_time": st.sampled_from(["2026-11-22 02:00:00", "2030-01-01T00:00:00+00:00"]),
        "at": st.sampled_from([*sb.backup_ids, "2030-01-01 00:00:00", "1999-01-01"]),
        "now_text": st.sampled_from(["2026-11-22T02:00:00+00:00", "2031-01-01T00:00:00"]),
        "to_gtid": st.sampled_from(["0-1-42", "0-1-1"]),
        "indices": st.sampled_from(["*", "orders", "orders,nothing"]),
        "pushgateway": st.just("http://127.0.0.1:9"),
        "gateway": st.just("http://127.0.0.1:9"),
        "misfire_grace": st.just("soon"),  # scheduler: never valid, it would not return
        "randomized_delay": st.sampled_from(["15m", "0"]),
        "policies": st.sampled_from([str(sb.policies), str(sb.policies / "llm.yaml")]),
        "path": st.sampled_from([str(sb.policies / "llm.yaml"), str(sb.policies)]),
        "only_path": st.sampled_from([str(sb.root / "etc"), str(sb.root / "etc" / "app.conf")]),
        "key_env": st.sampled_from(["HOME", "BACKUPCTL_FUZZ_UNSET"]),
    }
    if name in strategies:
        return strategies[name]
    if isinstance(param.type, click.Path):
        return fresh
    if isinstance(param.type, click.Choice):
        return st.sampled_from(list(param.type.choices))
    if isinstance(param.type, (click.IntRange, click.FloatRange)) or param.type in (
        click.INT,
        click.FLOAT,
    ):
        return st.integers(1, 16).map(str)
    return st.sampled_from(["backupctl", "root", "127.0.0.1", "x"])


def _hostile(sb: Sandbox, param: click.Parameter, command: tuple[str, ...]) -> Any:
    """Values nobody means, kept inside the sandbox wherever they could be written to."""
    name = param.name or ""
    if name in ("policy", "policies") and isinstance(param, click.Argument):
        return hostile.filter(lambda v: v != "db") if command == ("binlog", "follow") else hostile
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "to_time": times,
        "at": times,
        "now_text": times,
        "to_gtid": gtids,
        "pushgateway": urls,
        "gateway": urls,
        "misfire_grace": durations,
        "randomized_delay": durations,
        "policies": sb.read_paths(),
        "path": sb.read_paths(),
        "only_path": sb.read_paths(),
        "key_file": sb.read_paths(),
    }
    if name in strategies:
        return strategies[name]
    if isinstance(param.type, click.Path):
        return sb.write_paths()
    if isinstance(param.type, (click.IntRange, click.FloatRange)) or param.type in (
        click.INT,
        click.FLOAT,
    ):
        return st.one_of(numbers, hostile)
    return hostile


@st.composite
def _param_tokens(
    draw: st.DrawFn, sb: Sandbox, param: click.Parameter, command: tuple[str, ...], wild: bool
) -> list[list[str]]:
    """Groups of tokens for one parameter (an option and its value stay together). A wild
    command line draws half its values from the hostile ones, and may leave a value out."""

    def value() -> str:
        odd = wild and draw(st.booleans())
        return str(draw((_hostile if odd else _plausible)(sb, param, command)))

    if isinstance(param, click.Argument):
        if param.nargs == -1:
            return [[value()] for _ in range(draw(st.integers(0, 3)))]
        give = draw(st.integers(0, 9)) > (0 if param.required and wild else 4)
        return [[value()]] if give or (param.required and not wild) else []
    assert isinstance(param, click.Option)
    if param.hidden and draw(st.integers(0, 3)):  # test hooks, now and then
        return []
    opt = draw(st.sampled_from(param.opts))
    if param.is_flag or param.count:
        return [[opt]] * draw(st.integers(0, 2 if param.count else 1))
    # global options mostly absent (a wrong --policies stops everything at once)
    ways = ["absent"] * (6 if not command else 3) + ["pair"] * 3 + ["equals"]
    how = draw(st.sampled_from([*ways, "bare"] if wild else ways))
    if how == "absent":
        return []
    if how == "bare":  # the value is missing (or is whatever comes next)
        return [[opt]]
    given = value()
    if how == "equals" and opt.startswith("--"):
        return [[f"{opt}={given}"]]
    return [[opt, given]]


EXTRA = ["--bogus", "-x", "--", "--json", "--help", "-h", "--version", "-", "--=", "---x"]
EXTRA += ["--json=1", "-vvv", "extra"]


@st.composite
def invocations(draw: st.DrawFn, sb: Sandbox) -> list[str]:
    """A command line: global options, a command, its parameters in random order; wild
    (hostile values, stray tokens) or plausible (what a user types, to get past the
    argument parser into the commands)."""
    path, command = draw(st.sampled_from(COMMANDS))
    wild = draw(st.booleans())
    head: list[str] = []
    for param in cli.params:
        if param.name == "version":
            continue
        for group in draw(_param_tokens(sb, param, (), wild)):
            head += group
    groups: list[list[str]] = []
    for param in command.params:
        groups += draw(_param_tokens(sb, param, path, wild))
    if wild and draw(st.integers(0, 2)) == 0:  # an unknown option, a stray "--", --help, ...
        groups.append([draw(st.sampled_from(EXTRA))])
    groups = draw(st.permutations(groups))
    tail = [token for group in groups for token in group]
    if path == ("scheduler",):  # the last --misfire-grace wins: one that fails at once
        bad = draw(durations.filter(_invalid_duration))
        tail = [*[t for t in tail if t != "--"], "--misfire-grace", bad]
    # execve cannot pass a NUL byte: no user can type one, so none is fuzzed here (they
    # are, in policy files, where YAML's "\0" escape puts them)
    return [token.replace("\x00", "") for token in [*head, *path, *tail]]


def _invalid_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return True
    return False


def _write_policies(sb: Sandbox, es_url: str, es_location: str) -> None:
    repo = f"file://{sb.root / 'repo'}"
    documents = {
        "db": {
            "driver": "mariadb",
            "connection": {"host": "127.0.0.1", "port": 9, "user": "backup", "connect_timeout": 1},
            "datadir": str(sb.root / "datadir"),
            "schedule": {"full": "0 2 * * *", "binlog": "0 * * * *"},
            "restore": {"health_timeout": "2s"},
        },
        "search": {
            "driver": "elasticsearch",
            "connection": {"url": es_url, "timeout": "5s"},
            "snapshot_repository": {
                "name": "fuzz",
                "type": "fs",
                "settings": {"location": es_location},
            },
            "schedule": {"snapshot": "30 2 * * *"},
            "restore": {"recovery_timeout": "10s"},
        },
        "llm": {
            "driver": "model",
            "path": str(sb.root / "model"),
            "version_from": "VERSION",
            "schedule": {"check": "*/15 * * * *"},
        },
        "configs": {
            "driver": "config-git",
            "paths": [str(sb.root / "etc")],
            "repository": f"file://{sb.root / 'configs.git'}",
            "schedule": {"check": "*/10 * * * *"},
        },
    }
    sb.policies.mkdir(parents=True)
    for name, document in documents.items():
        data = {"version": 1, "name": name, "repository": repo, **document}
        (sb.policies / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def sandbox(tmp_path: Path, es_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    root = tmp_path / "sandbox"
    sb = Sandbox(root, root / "cwd" / "a" / "b" / "c" / "d", root / "policies", root / "state")
    sb.cwd.mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "app.conf").write_text("listen 80\n")
    (root / "model").mkdir()
    (root / "model" / "VERSION").write_text("v1\n")
    (root / "model" / "weights.bin").write_bytes(b"w" * 4096)
    es = es_cluster.client()
    es.indices.create(index="orders")
    es.index(index="orders", document={"n": 1}, refresh=True)
    _write_policies(sb, es_cluster.url, es_cluster.repo_location("fuzz"))
    monkeypatch.chdir(sb.cwd)
    for name in ("BACKUPCTL_METRICS_TEXTFILE", "BACKUPCTL_PUSHGATEWAY", "BACKUPCTL_NOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BACKUPCTL_POLICIES", str(sb.policies))
    monkeypatch.setenv("BACKUPCTL_STATE_DIR", str(sb.state))
    for policy in ("llm", "configs", "search"):  # something to list, verify and restore
        result = run_inprocess(["--log-format", "json", "backup", policy, "--json"])
        assert result.code == 0, result
        sb.backup_ids.append(yaml.safe_load(result.stdout)["backup_id"])
    return sb


def test_random_command_lines(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    codes: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    slowest: list[tuple[float, list[str]]] = [(0.0, [])]

    seen: set[tuple[str, ...]] = set()

    def check(argv: list[str]) -> None:
        if tuple(argv) in seen:  # hypothesis repeats itself; count what is new
            return
        seen.add(tuple(argv))
        started = time.monotonic()
        result = run_inprocess(argv)
        took = time.monotonic() - started
        slowest[0] = max(slowest[0], (took, argv))
        usage = result.code == 2 and "Usage:" in result.stderr  # click refused the arguments
        codes["usage" if usage else str(result.code)] += 1
        commands[next((t for t in argv if t in {c[0][0] for c in COMMANDS}), "?")] += 1
        found = problems_with(result, EXIT_CODES)
        assert not found, (
            f"backupctl {argv!r}: {found}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )

    fuzz: Callable[[], None] = settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(invocations(sandbox))(check))
    if SEED is not None:
        fuzz = seed(int(SEED))(fuzz)
    started = time.monotonic()
    fuzz()
    took = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nfuzz cli: {sum(codes.values())} distinct command lines in {took:.1f}s; outcomes "
            f"{dict(sorted(codes.items()))} (usage: refused by the argument parser); "
            f"slowest {slowest[0][0]:.1f}s; per command {dict(sorted(commands.items()))}"
        )
    assert codes["0"] and sum(codes.values()) - codes["usage"] > EXAMPLES // 4


# A handful as a user runs them (a subprocess: real argv, real streams, real exit codes).
SUBPROCESS_CASES = [
    (["list", "\udcff"], {2}),
    (["restore", "llm", "../../../etc/passwd", "--dry-run"], {2}),
    (["drill", "show", "../../../../etc/passwd"], {2}),
    (["verify", "llm", "x" * 5000], {2}),
    (["backup", "--type", "\u202e", "llm"], {2}),
    (["--state-dir", "", "status", "--json", "--bogus"], {2}),
]


@pytest.mark.parametrize(("argv", "codes"), SUBPROCESS_CASES)
def test_hostile_command_lines_in_a_subprocess(
    argv: list[str], codes: set[int], sandbox: Sandbox
) -> None:
    result = run_backupctl(["--log-format", "json", *argv], timeout=120)
    assert not problems_with(result, codes), (problems_with(result, codes), result)


# Bugs the fuzzing found, each an internal error (exit 1 with "a bug in backupctl") before.
REGRESSIONS = [
    # a state directory the host refuses (name too long): OSError escaped
    (["--state-dir", "s" * 300, "backup", "llm"], 1, "File name too long"),
    # a policy name that is not UTF-8 reached SQLite, which cannot encode it
    (["list", "\udcff"], 2, "is not a policy name"),
    # echoing an argument that is not UTF-8 failed on a strict (UTF-8 locale) stdout
    (["cron", "--user", "caf\udce9"], 0, ""),
    # a malformed Pushgateway URL raised ValueError / http.client.InvalidURL
    (["metrics", "--push", "http://[::1"], 1, "cannot push metrics"),
    (["metrics", "--push", "http://127.0.0.1:abc"], 1, "cannot push metrics"),
]


@pytest.mark.parametrize(("argv", "code", "message"), REGRESSIONS)
def test_fuzzing_finds_stay_fixed(
    argv: list[str], code: int, message: str, sandbox: Sandbox
) -> None:
    result = run_inprocess(["--log-format", "json", *argv])
    assert not problems_with(result, {code}), (problems_with(result, {code}), result)
    assert message in result.stderr


def test_bytes_that_are_not_utf8_are_echoed_back(sandbox: Sandbox) -> None:
    """Under a UTF-8 locale stdout is strict: an argument that is not UTF-8 (here the
    Latin-1 "café" of an old file name) is printed back as the bytes it was."""
    proc = subprocess.run(
        [sys.executable, "-m", "backupctl", "cron", "--user", os.fsdecode(b"caf\xe9")],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},  # strict, as under en_US.UTF-8
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b" caf\xe9 " in proc.stdout and b"Traceback" not in proc.stderr
