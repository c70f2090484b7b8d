"""SIGKILL trials: start ``backupctl``, kill it at a seeded moment, count what happened.

Two ways to pick the moment, both seeded:

- a **timed** kill after a delay drawn from the operation's typical duration (its
  shortest uninterrupted run so far, so that few runs finish before the kill), from
  most of backupctl's start-up on (a kill while Python imports modules could not find
  anything half-done);
- a **kill point**: just before the k-th step that changes state -- an upload opened or
  committed, an object deleted, the catalog or a restore journal written -- for windows
  too narrow for a timer to find (e.g. between deleting a manifest and forgetting it in
  the catalog). ``python -m tests.support.kill AT MODE COUNT_FILE -- ARGS`` runs
  backupctl with the points installed (AT 0 only counts them into COUNT_FILE); every
  third trial of an operation whose points were counted is a kill-point trial.

What a SIGKILL of backupctl does to what it started depends on who sends it:

- ``cgroup`` (what ``systemctl kill -s KILL``, a unit's stop timeout or the OOM killer
  does to a ``backupctl-*.service``, whose units keep the default KillMode): backupctl
  and every process it started die at once -- mariabackup, mbstream, mariadb-binlog,
  hook scripts (which run in their own sessions) and the private recovery
  ``mariadbd``. Services the hooks manage are spared: in production ``systemctl start
  mariadb`` runs the server in its own unit, outside backupctl's cgroup; ``spare``
  lists their command lines.
- ``process`` (``kill -9 PID`` from a shell, a cron job's parent dying): only backupctl
  dies. Children writing into its pipes die of SIGPIPE; hooks, ``mariabackup
  --prepare`` and servers run on as orphans. The trial waits for the orphans that end
  by themselves (everything but servers) before the next command, as the next timer
  run minutes later would.

``BACKUPCTL_KILL_MODE``: ``cgroup``, ``process`` or ``mixed`` (default: about one trial
in four is ``process``). ``BACKUPCTL_KILL_SEED`` (base seed) and
``BACKUPCTL_KILL_TRIALS`` (trials per operation) make a run replayable; every failure
message names them with the trial, its delay or kill point and its mode.
``BACKUPCTL_KILL_ONLY=N`` runs only trial N, ``BACKUPCTL_KILL_DELAY=S`` forces timed
kills after S seconds, ``BACKUPCTL_KILL_REPORT=FILE`` appends each operation's figures
as a JSON line.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

BASE_SEED = int(os.environ.get("BACKUPCTL_KILL_SEED", "20261110"))
TRIALS = int(os.environ.get("BACKUPCTL_KILL_TRIALS", "3"))
MODE = os.environ.get("BACKUPCTL_KILL_MODE", "mixed")
ONLY = os.environ.get("BACKUPCTL_KILL_ONLY")
FORCED_DELAY = os.environ.get("BACKUPCTL_KILL_DELAY")
REPORT = os.environ.get("BACKUPCTL_KILL_REPORT")
ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")
Spare = Sequence[Sequence[str]]
"""Command lines of processes a cgroup kill leaves alone (services in their own units)."""


@functools.cache
def startup_seconds() -> float:
    """How long ``backupctl`` takes to start (imports) before it does anything."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "backupctl", "--help"], capture_output=True, check=True, timeout=60
    )
    return time.monotonic() - started


@dataclass
class Trial:
    """One kill: which operation, its seeded randomness, when and how to kill."""

    operation: str
    index: int
    rng: random.Random
    fraction: float
    mode: str
    delay: float | None = None  # a timed kill
    point: int | None = None  # or a kill point
    points: int = 0  # (of about this many in a typical run)

    @property
    def when(self) -> str:
        if self.point is not None:
            return f"kill point {self.point}" + (f" of ~{self.points}" if self.points else "")
        return f"delay {self.delay:.3f}s"

    def __str__(self) -> str:
        return (
            f"[{self.operation} trial {self.index}: BACKUPCTL_KILL_SEED={BASE_SEED} "
            f"BACKUPCTL_KILL_TRIALS={TRIALS}, {self.when} (fraction {self.fraction:.3f}), "
            f"mode {self.mode}]"
        )


def trials(tally: Tally) -> Iterator[Trial]:
    """The seeded trials of ``tally.operation``, their moments stratified over the run."""
    plan = random.Random(f"{BASE_SEED}:{tally.operation}")
    slots = list(range(TRIALS))
    plan.shuffle(slots)
    for index in range(TRIALS):
        rng = random.Random(f"{BASE_SEED}:{tally.operation}:{index}")
        fraction = (slots[index] + rng.random()) / TRIALS
        mode = MODE if MODE != "mixed" else ("process" if rng.random() < 0.25 else "cgroup")
        if ONLY is not None and int(ONLY) != index:
            continue
        trial = Trial(tally.operation, index, rng, fraction, mode)
        if tally.points and index % 3 == 2 and not FORCED_DELAY:
            trial.points = max(tally.points)  # (a run after a killed one has less to do)
            trial.point = 1 + int(fraction * trial.points)
        else:
            typical = tally.typical
            floor = min(0.8 * startup_seconds(), 0.5 * typical)
            trial.delay = float(FORCED_DELAY or floor + fraction * (typical - floor))
        yield trial


@dataclass
class Killed:
    """How a killed run ended: ``code`` is None when the kill came first."""

    code: int | None
    stdout: str
    stderr: str
    seconds: float
    orphans: list[int] = field(default_factory=list)  # ``process`` mode: what it left running

    @property
    def finished(self) -> bool:
        return self.code is not None


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def argv_of(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def spared(argv: list[str], spare: Spare) -> bool:
    if argv[:1] and os.path.basename(argv[0]) == "setsid":  # about to exec the service
        argv = argv[1:]
    return any(argv == list(s) for s in spare)


def descendants(pid: int, spare: Spare = ()) -> list[int]:
    """Every live descendant of ``pid``, without spared processes and what they started."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if alive(child) and not spared(argv_of(child), spare):
                found.append(child)
                todo.append(child)
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def kill_cgroup(proc: subprocess.Popen[str], spare: Spare = ()) -> None:
    """SIGKILL ``proc`` and everything it started except spared processes.

    Everything is stopped first (SIGSTOP), until no new process appears, so nothing
    forks or reparents while the tree is walked; then all get SIGKILL at once. Returns
    once they are gone.
    """
    stopped: set[int] = set()
    _signal(proc.pid, signal.SIGSTOP)
    while fresh := [p for p in descendants(proc.pid, spare) if p not in stopped]:
        for pid in fresh:
            _signal(pid, signal.SIGSTOP)
        stopped.update(fresh)
    for pid in [proc.pid, *stopped]:
        _signal(pid, signal.SIGKILL)
    _wait_for(list(stopped), 30)  # SIGKILL is delivered asynchronously


def _is_server(argv: list[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) in ("mariadbd", "mysqld")


def _wait_for(orphans: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while timeout and any(alive(p) for p in orphans):
        if time.monotonic() > deadline:
            left = {p: argv_of(p) for p in orphans if alive(p)}
            raise AssertionError(f"orphans of the killed backupctl still run: {left}")
        time.sleep(0.05)


def _orphans(pid: int) -> list[int]:
    return [p for p in descendants(pid) if not _is_server(argv_of(p))]


def run_killed(
    args: list[str],
    trial: Trial,
    spare: Spare = (),
    env: dict[str, str] | None = None,
    orphan_wait: float = 300,
) -> Killed:
    """Run ``backupctl ARGS`` and SIGKILL it at ``trial``'s delay or kill point.

    ``orphan_wait``: in ``process`` mode, how long the orphans may take to end (0: do
    not wait, e.g. for a streaming child that never ends by itself)."""
    started, orphans = time.monotonic(), list[int]()
    if trial.point is not None:
        command = point_command(trial.point, trial.mode, "", args)
    else:
        command = [sys.executable, "-m", "backupctl", *args]
    proc = subprocess.Popen(
        command,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {}), "BACKUPCTL_KILL_SPARE": json.dumps(list(spare))},
        cwd=ROOT,
        start_new_session=True,  # its own process group, like a service
    )
    try:
        if trial.point is not None:
            out, err = proc.communicate(timeout=900)
            if trial.mode == "process" and proc.returncode == -signal.SIGKILL:
                marker = next(line for line in err.splitlines() if line.startswith("orphans: "))
                orphans = json.loads(marker.removeprefix("orphans: "))
                _wait_for(orphans, orphan_wait)
        else:
            try:
                proc.wait(timeout=trial.delay)
            except subprocess.TimeoutExpired:
                if trial.mode == "process":
                    orphans = _orphans(proc.pid)
                    _signal(proc.pid, signal.SIGKILL)
                    _wait_for(orphans, orphan_wait)
                else:
                    kill_cgroup(proc, spare)
            out, err = proc.communicate()
    except BaseException:  # interrupted (Ctrl-C, a test timeout): leave nothing running
        kill_cgroup(proc, spare)
        raise
    code = None if proc.returncode == -signal.SIGKILL else proc.returncode
    return Killed(code, out, err, time.monotonic() - started, [p for p in orphans if alive(p)])


@dataclass
class Tally:
    """Figures of one operation's trials, for the summary table and the README."""

    operation: str
    durations: list[float] = field(default_factory=list)
    points: list[int] = field(default_factory=list)
    trials: int = 0
    killed: int = 0
    finished: int = 0
    by_point: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    data_lost: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def typical(self) -> float:
        """Seconds of the shortest uninterrupted run timed so far."""
        assert self.durations, "time an uninterrupted run first (Tally.time or count_points)"
        return min(self.durations)

    def time(self, run: Callable[..., T], *args: Any) -> T:
        """Run an uninterrupted ``run(*args)``; its duration joins the typical duration."""
        started = time.monotonic()
        result = run(*args)
        self.durations.append(time.monotonic() - started)
        return result

    def count_points(self, args: list[str], context: object) -> subprocess.CompletedProcess[str]:
        """Run ``backupctl ARGS`` uninterrupted, counting its kill points and timing it.
        Asserts it succeeds (``context`` names the trial in the message)."""
        started = time.monotonic()
        done, names = counted_run(args, context)
        self.durations.append(time.monotonic() - started)
        self.points.append(len(names))
        return done

    def add(self, trial: Trial, killed: Killed, outcome: str, lost: bool = False) -> None:
        self.trials += 1
        self.killed += not killed.finished
        self.finished += killed.finished
        self.by_point += trial.point is not None
        self.outcomes[outcome] += 1
        self.modes[trial.mode] += 1
        self.data_lost += lost

    def row(self) -> dict[str, object]:
        return {
            "operation": self.operation,
            "seed": BASE_SEED,
            "typical_seconds": round(self.typical, 2) if self.durations else None,
            "typical_points": max(self.points) if self.points else None,
            "trials": self.trials,
            "kill_points": self.by_point,
            "killed_mid_run": self.killed,
            "finished_before_kill": self.finished,
            "modes": dict(self.modes),
            "outcomes": dict(self.outcomes),
            "data_lost": self.data_lost,
            "seconds": round(time.monotonic() - self.started, 1),
        }

    def table(self) -> str:
        r = self.row()
        outcomes = "\n".join(f"    {v:3}  {k}" for k, v in sorted(self.outcomes.items()))
        modes = ", ".join(f"{k} {v}" for k, v in sorted(self.modes.items()))
        return (
            f"\nkill trials -- {self.operation} (seed {BASE_SEED}; typical run "
            f"{r['typical_seconds']}s, {r['typical_points'] or 'no'} kill points; "
            f"{r['seconds']}s in all)\n"
            f"  trials {self.trials} ({self.by_point} at kill points; modes {modes}) | "
            f"killed mid-run {self.killed} | finished before the kill {self.finished} | "
            f"data lost {self.data_lost}\n"
            f"  outcomes:\n{outcomes}\n"
        )

    def publish(self) -> str:
        """Append the figures to ``BACKUPCTL_KILL_REPORT`` (if set); return the table."""
        if REPORT:
            with open(REPORT, "a") as fh:
                fh.write(json.dumps(self.row()) + "\n")
        return self.table()


# ------------------------------------------------------------------------- kill points

POINTS = (
    ("backupctl.storage.local", "LocalRepository", "open_write"),
    ("backupctl.storage.local", "LocalObjectWriter", "commit"),
    ("backupctl.storage.local", "LocalRepository", "delete"),
    ("backupctl.catalog.index", "Catalog", "record"),
    ("backupctl.catalog.index", "Catalog", "forget"),
    ("backupctl.catalog.index", "Catalog", "replace_repository"),
    ("backupctl.runbook.journal", "Journal", "save"),
)


def counted_run(
    args: list[str], context: object
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``backupctl ARGS`` uninterrupted; return it and the names of its kill points
    in order (e.g. ``Catalog.forget``). Asserts it succeeds, naming ``context``."""
    with tempfile.NamedTemporaryFile(suffix=".json") as count:
        done = subprocess.run(
            point_command(0, "cgroup", count.name, args),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, (
            f"{context} `backupctl {' '.join(args)}` exited {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-4000:]}"
        )
        return done, list(json.loads(Path(count.name).read_text()))


def at_point(operation: str, point: int, mode: str = "cgroup") -> Trial:
    """A trial killing at kill point ``point`` (a regression case, no randomness)."""
    return Trial(operation, point, random.Random(point), 0.0, mode, point=point)


def _label(name: str, args: tuple[Any, ...]) -> str:
    """``name``, and for a journal the step it is about to record as running (twice: when
    the step starts, and once it has run, before its result) or the run's state."""
    if name != "Journal.save":
        return name
    journal = args[0]
    running = [step.name for step in journal.steps if step.status == "running"]
    return f"{name}({running[0]} running)" if running else f"{name}({journal.state})"


def point_command(at: int, mode: str, count_file: str, args: list[str]) -> list[str]:
    """The command running ``backupctl ARGS`` killed at kill point ``at`` (0: never)."""
    return [sys.executable, "-m", "tests.support.kill", str(at), mode, count_file, "--", *args]


def _install_points(at: int, mode: str, count_file: str) -> None:
    import atexit
    import importlib
    import itertools
    import threading

    counter, seen, lock = itertools.count(1), list[str](), threading.Lock()
    spare = json.loads(os.environ.get("BACKUPCTL_KILL_SPARE", "[]"))

    def die(number: int, name: str) -> None:
        sys.stderr.write(f"kill point {number}: before {name}\n")
        if mode == "cgroup":  # what it started dies with it
            for pid in descendants(os.getpid(), spare):
                _signal(pid, signal.SIGKILL)
        else:
            sys.stderr.write(f"orphans: {json.dumps(_orphans(os.getpid()))}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(original: Callable[..., Any], name: str) -> Callable[..., Any]:
        def patched(*args: Any, **kwargs: Any) -> Any:
            with lock:
                number = next(counter)
                label = _label(name, args)
                seen.append(label)
                if number == at:
                    die(number, label)
            return original(*args, **kwargs)

        return patched

    for module, owner_name, method in POINTS:
        owner = getattr(importlib.import_module(module), owner_name)
        setattr(owner, method, wrap(getattr(owner, method), f"{owner_name}.{method}"))
    if count_file:
        atexit.register(lambda: Path(count_file).write_text(json.dumps(seen)))


if __name__ == "__main__":
    at_arg, mode_arg, count_arg, _separator, *backupctl_args = sys.argv[1:]
    _install_points(int(at_arg), mode_arg, count_arg)
    from backupctl.cli import main

    sys.argv = ["backupctl", *backupctl_args]
    main()
