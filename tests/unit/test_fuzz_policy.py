"""Hostile policy files: every input is either valid policies or a PolicyError, and
``backupctl policy validate FILE`` exits 0 or 2 with a message, never a traceback.

Inputs: arbitrary bytes and text (invalid UTF-8, control characters), YAML built from
its most treacherous tokens (anchors, aliases, tags, flow collections, directives),
"billion laughs" alias bombs, deep nesting and alias cycles, and, for every driver in
the registry, a valid policy with random fields mutated (wrong types, unknown keys,
numbers out of range, odd durations, schedules and timezones, path traversal in
names, unicode, NUL bytes), then sometimes its YAML text mangled character by character.

``BACKUPCTL_FUZZ_EXAMPLES`` sets the examples per fuzz target (default 200); each
target prints how many inputs it tried and how long that took.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from backupctl.errors import PolicyError
from backupctl.policy.loader import load_policies
from backupctl.policy.registry import POLICY_MODELS
from backupctl.policy.yamlsrc import MAX_BYTES, MAX_DEPTH
from backupctl.storage.keys import NAME_RE
from tests.fuzz.inprocess import problems_with, run_inprocess
from tests.fuzz.values import NASTY_STRINGS
from tests.support.cli import run_backupctl

#: property campaigns over thousands of inputs: seconds each (pytest -m "not slow" skips them)
pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("BACKUPCTL_FUZZ_EXAMPLES", "200"))
SEED = os.environ.get("BACKUPCTL_FUZZ_SEED")  # another reproducible set than the default
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=SEED is None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: one valid policy per driver, each field filled in, pointing at nothing real
BASES: dict[str, dict[str, Any]] = {
    "mariadb": {
        "version": 1,
        "name": "shop-db",
        "driver": "mariadb",
        "connection": {"host": "127.0.0.1", "port": 3306, "user": "backup"},
        "datadir": "/var/lib/mysql",
        "repository": "file:///var/backups/backupctl",
        "schedule": {"full": "0 2 * * *", "binlog": "continuous", "timezone": "Europe/Berlin"},
        "retention": {"full": "30d", "binlog": "7d"},
        "objectives": {"rpo": "1h", "rto": "4h"},
        "restore": {
            "stop": ["hooks/stop.sh"],
            "start": ["hooks/start.sh"],
            "verify": [{"sql": "SELECT COUNT(*) FROM shop.orders", "expect": "> 0"}],
            "keep_aside": "7d",
        },
        "backup": {"compression_level": 3, "parallel": 2, "binlog_flush_interval": "2s"},
        "drill": {"schedule": "quarterly", "select": "random", "window": "90d"},
        "notify": [{"url": "http://127.0.0.1:9/hook", "when": ["failure", "success"]}],
    },
    "elasticsearch": {
        "version": 1,
        "name": "search",
        "driver": "elasticsearch",
        "connection": {"url": "http://127.0.0.1:9200", "timeout": "30s"},
        "snapshot_repository": {
            "name": "backupctl",
            "type": "fs",
            "settings": {"location": "/var/backups/es"},
        },
        "repository": {"url": "s3://bucket-name/prefix", "region": "eu-west-1"},
        "indices": ["orders-*", "users"],
        "schedule": {"snapshot": "30 2 * * *"},
        "retention": {"expire_after": "30d", "min_count": 5, "max_count": 60},
        "objectives": {"rpo": "24h", "rto": "2h"},
        "restore": {"mode": "rename", "verify": [{"index": "orders-*", "min_docs": 1}]},
    },
    "model": {
        "version": 1,
        "name": "llm",
        "driver": "model",
        "path": "/srv/models/llm",
        "version_from": "VERSION",
        "repository": "file:///var/backups/backupctl",
        "schedule": {"check": "*/15 * * * *"},
        "retention": {"keep_versions": 5},
        "restore": {"verify": ["hooks/verify.sh"], "perf_test": ["hooks/bench.sh"]},
        "backup": {"compression_level": 1, "parallel": 4},
    },
    "config-git": {
        "version": 1,
        "name": "configs",
        "driver": "config-git",
        "paths": ["/etc/nginx", "/etc/mysql/my.cnf"],
        "exclude": ["*.key", "/etc/mysql/debian.cnf"],
        "repository": "file:///var/backups/config-history.git",
        "schedule": {"check": "*/10 * * * *", "timezone": "UTC"},
    },
}


FIELD_NAMES = sorted(
    {name for model in POLICY_MODELS.values() for name in model.model_fields}
    | {"host", "port", "socket", "user", "password", "password_file", "password_env"}
    | {"full", "binlog", "snapshot", "check", "timezone", "rpo", "rto", "url", "when"}
    | {"keep_versions", "min_count", "max_count", "expire_after", "mode", "verify", "sql"}
)

#: values some field accepts, so that mutated policies are also valid now and then
PLAUSIBLE = ["1h", "30d", "90s", "0 3 * * *", "*/5 * * * *", "hourly", "UTC", "Europe/Berlin"]
PLAUSIBLE += ["shop-2", "file:///var/backups/x", "s3://bucket-name/p", "http://127.0.0.1:9200"]
PLAUSIBLE += ["/srv/x", "content-hash", "rename", "replace", "latest", "> 0", "green"]

scalars = st.one_of(
    st.sampled_from(PLAUSIBLE),
    st.integers(0, 100),
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=40),
    st.sampled_from(FIELD_NAMES),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)), children),
    ),
    max_leaves=12,
)


def _paths(data: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``data`` a mutation can reach: mapping keys and list items."""
    found = [here]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*here, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*here, index))
    return found


def _container(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated_policy(draw: st.DrawFn, driver: str | None = None) -> Any:
    """A valid policy of ``driver`` (any when None) with 1-4 random mutations."""
    name = driver or draw(st.sampled_from(sorted(BASES)))
    doc: Any = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(st.sampled_from(["set", "delete", "add", "wrap", "replace-root"]))
        if op == "replace-root" and not path:
            doc = draw(values)
            continue
        if not path:
            if isinstance(doc, dict):
                doc[draw(st.sampled_from(FIELD_NAMES))] = draw(values)
            continue
        parent, last = _container(doc, path[:-1]), path[-1]
        if op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12)))] = draw(
                values
            )
        elif op == "wrap":
            parent[last] = [parent[last]] if draw(st.booleans()) else {"value": parent[last]}
        else:
            parent[last] = draw(values)
    return doc


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=200)


MANGLE_PIECES = [":", "- ", "[", "]", "{", "}", "&a ", "*a", "!!str ", "!!python/tuple ", "\t"]
MANGLE_PIECES += ["\n", "  ", "'", '"', "#", "? ", "|", ">", "%YAML 1.1\n", "---\n", "...\n"]
MANGLE_PIECES += ["\x00", "\ufeff", "\x85", "\u2028", "!!binary ", "!!timestamp ", "<<: *a\n"]


@st.composite
def mangled_text(draw: st.DrawFn) -> str:
    """A mutated policy's YAML text with a few characters inserted, deleted or replaced."""
    text = _dump(draw(mutated_policy()))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(st.sampled_from(MANGLE_PIECES), st.text(max_size=3)))
        if op == "insert":
            text = text[:at] + piece + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    return text


YAML_TOKENS = ["a", "b", "name", "driver", "mariadb", "model", "version", "1", "x"]
YAML_TOKENS += [": ", ":", "- ", "-", "[", "]", "{", "}", ",", "&a ", "&b ", "*a", "*b", "\n"]
YAML_TOKENS += ["  ", "? ", "!!map ", "!!seq ", "!!str ", "!!int ", "!!float ", "!!set "]
YAML_TOKENS += ["!!binary ", "!!timestamp ", "!!omap ", "!!python/object:os.system ", "!x "]
YAML_TOKENS += ["%YAML 1.2\n", "%TAG ! tag:x,2000:\n", "---", "...", "'", '"', "|", ">", "#"]
YAML_TOKENS += ["<<: ", "~", "null", "2001-13-45", "1" * 5000, "\t", "\\", "\x00", "\ufeff"]

yaml_soup = st.lists(st.sampled_from(YAML_TOKENS), max_size=60).map("".join)


def _check_library(path: Path) -> str:
    """Load ``path``: valid policies or a PolicyError with located problems, nothing else."""
    try:
        policies = load_policies(path)
    except PolicyError as exc:
        assert exc.problems, "a PolicyError without any problem"
        for problem in exc.problems:
            assert problem.file == str(path) and problem.message.strip()
        return "invalid"
    assert len(policies) == 1
    assert NAME_RE.match(policies[0].name)
    assert policies[0].driver in POLICY_MODELS
    return "valid"


def _check_cli(path: Path) -> None:
    result = run_inprocess(["--log-format", "json", "policy", "validate", str(path)])
    assert not problems_with(result, {0, 2}), (problems_with(result, {0, 2}), result)
    if result.code == 2:
        assert str(path) in result.stderr, result.stderr
    else:
        assert "valid" in result.stdout


def _fuzz(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    label: str,
    strategy: st.SearchStrategy[Any],
    to_bytes: Callable[[Any], bytes],
) -> dict[str, int]:
    """Run ``strategy`` through the loader and the CLI; print and return the outcome counts."""
    outcomes = {"valid": 0, "invalid": 0}
    path = tmp_path / "policy.yaml"

    @FUZZ
    @given(strategy)
    def one(value: Any) -> None:
        path.write_bytes(to_bytes(value))
        outcomes[_check_library(path)] += 1
        _check_cli(path)

    if SEED is not None:
        one = seed(int(SEED))(one)
    started = time.monotonic()
    one()
    took = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nfuzz {label}: {sum(outcomes.values())} inputs in {took:.1f}s "
            f"({outcomes['valid']} valid, {outcomes['invalid']} refused with exit 2)"
        )
    return outcomes


def _text(value: str) -> bytes:
    return value.encode("utf-8", errors="surrogatepass")


def test_arbitrary_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = _fuzz(tmp_path, capsys, "policy/bytes", st.binary(max_size=2000), bytes)
    assert outcomes["invalid"] > 0


def test_arbitrary_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fuzz(tmp_path, capsys, "policy/text", st.text(max_size=500), _text)


def test_yaml_token_soup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fuzz(tmp_path, capsys, "policy/yaml-tokens", yaml_soup, _text)


@pytest.mark.parametrize("driver", sorted(BASES))
def test_mutated_policies(driver: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = _fuzz(
        tmp_path,
        capsys,
        f"policy/mutated-{driver}",
        mutated_policy(driver),
        lambda d: _text(_dump(d)),
    )
    assert outcomes["invalid"] > 0  # the mutations do reach the validation


def test_mangled_policy_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fuzz(tmp_path, capsys, "policy/mangled-text", mangled_text(), _text)


def test_every_driver_has_a_fuzzed_base() -> None:
    """A new driver joins the fuzzing by adding its base policy above."""
    assert set(BASES) == set(POLICY_MODELS)
    for base in BASES.values():
        path_free = copy.deepcopy(base)
        assert POLICY_MODELS[base["driver"]].model_validate(path_free).name == base["name"]


def _bomb(levels: int, fanout: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * fanout) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]")
    return "\n".join(lines) + "\n"


@FUZZ
@given(levels=st.integers(2, 30), fanout=st.integers(2, 12), at=st.sampled_from(sorted(BASES)))
def test_alias_bombs_are_refused_quickly(levels: int, fanout: int, at: str) -> None:
    """Billion laughs inside an otherwise valid policy: refused (or harmless) in bounded
    time, whatever the expansion would have been (up to 12^30 values)."""
    doc = _dump(BASES[at]) + _bomb(levels, fanout).replace("a0:", "x-a0:", 1)
    directory = Path(os.environ.get("TMPDIR", "/tmp"))
    path = directory / f"backupctl-fuzz-bomb-{os.getpid()}.yaml"
    try:
        path.write_text(doc)
        started = time.monotonic()
        outcome = _check_library(path)
        assert time.monotonic() - started < 5
        # the bomb's keys are unknown fields, so the policy never loads
        assert outcome == "invalid"
    finally:
        path.unlink(missing_ok=True)


HOSTILE_FILES: dict[str, tuple[bytes, str]] = {
    "billion-laughs": (_bomb(12, 10).encode(), "more than"),
    "alias-cycle": (b"version: 1\nname: &n [*n]\n", "nested more than"),
    "deep-flow": (b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested more than"),
    "deep-block": (
        "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 5)).encode(),
        "nested more than",
    ),
    "huge": (b"# " + b"x" * (MAX_BYTES + 10) + b"\n", "larger than"),
    "invalid-utf8": (b"version: 1\nname: \xff\xfe\n", "cannot read file"),
    "bad-date": (b"version: 1\nname: x\ndriver: 2001-13-45\n", "invalid value"),
    "huge-int": (b"version: " + b"1" * 5000 + b"\n", "invalid value"),
    "python-tag": (b"version: !!python/object/apply:os.system [id]\n", "unsupported tag"),
    "python-scalar-tag": (b"version: !!python/name:os.system x\n", "invalid value"),
    "unhashable-driver": (b"version: 1\nname: x\ndriver: [mariadb]\n", "driver"),
    "complex-key": (b"? [a, b]\n: 1\nversion: 1\n", "keys must be strings"),
    "huge-duration": (
        _dump({**BASES["model"], "objectives": {"rpo": "99999999999999999999w"}}).encode(),
        "objectives.rpo",
    ),
    "recursive-timezone": (
        _dump({**BASES["model"], "schedule": {"timezone": "a/" * 3000 + "b"}}).encode(),
        "unknown timezone",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_hostile_files(case: str, tmp_path: Path) -> None:
    """Known killers (each was an internal error, a hang or a RecursionError before):
    refused with exit 2, a message naming the file, and no traceback, in a subprocess
    as a user runs it."""
    content, message = HOSTILE_FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    result = run_backupctl(["--log-format", "json", "policy", "validate", str(path)], timeout=60)
    took = time.monotonic() - started
    assert result.code == 2, result
    assert str(path) in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert took < 20
