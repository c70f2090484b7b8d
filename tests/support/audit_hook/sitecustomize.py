"""Test only: record every process a Python process starts, through an audit hook.

Put this directory on ``PYTHONPATH`` and set ``BACKUPCTL_TEST_AUDIT_LOG`` to a file: the
process appends one JSON line for itself when it starts (``event: "start"``, its
``sys.orig_argv``) and one for every process it starts (``subprocess.Popen``,
``os.exec*``, ``os.posix_spawn``, ``os.spawn*``, ``os.system``): ``pid`` (of the process
that started it), ``event``, ``argv`` and ``env_names`` (the names of the environment it
gets, never the values).

With ``BACKUPCTL_TEST_AUDIT_SECRETS`` naming a file of secrets (one a line), each record
also lists ``env_with_secret``: the names of the variables whose value contains one of
them (so a test can tell which variables carry a secret without this file holding any).

Nothing here changes what the process does: a failure to record is ignored.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

_LOG = os.environ.get("BACKUPCTL_TEST_AUDIT_LOG")
_EVENTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"}


def _load_secrets() -> list[str]:
    path = os.environ.get("BACKUPCTL_TEST_AUDIT_SECRETS")
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.rstrip("\n") for line in fh if line.strip()]
    except OSError:
        return []


_SECRETS = _load_secrets()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _argv(value: Any) -> list[str]:
    if isinstance(value, str | bytes | os.PathLike):
        return [_text(value)]
    if isinstance(value, Iterable):
        return [_text(v) for v in value]
    return [_text(value)]


def _env(env: Any) -> dict[str, str]:
    if env is None:
        env = os.environ
    if not isinstance(env, Mapping):
        return {}
    return {_text(k): _text(v) for k, v in env.items()}


def _write(record: dict[str, Any]) -> None:
    if not _LOG:
        return
    line = (json.dumps(record) + "\n").encode()
    try:
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _record(event: str, argv: Any, env: Any) -> None:
    variables = _env(env)
    _write(
        {
            "pid": os.getpid(),
            "event": event,
            "argv": _argv(argv),
            "env_names": sorted(variables),
            "env_with_secret": sorted(
                name for name, value in variables.items() if any(s in value for s in _SECRETS)
            ),
        }
    )


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS:
        return
    try:
        if event == "subprocess.Popen":  # (executable, args, cwd, env)
            _record(event, args[1], args[3])
        elif event in ("os.exec", "os.posix_spawn"):  # (path, argv, env)
            _record(event, args[1], args[2])
        elif event == "os.spawn":  # (mode, path, args, env)
            _record(event, args[2], args[3])
        else:  # os.system: (command,)
            _record(event, args[0], None)
    except Exception:  # never break the process under test
        pass


if _LOG:
    _record("start", sys.orig_argv, None)
    sys.addaudithook(_hook)
