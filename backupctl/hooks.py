"""Hook commands from policies: run with context in the environment, a timeout, logged output."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping
from datetime import timedelta

import structlog

from backupctl.errors import BackupctlError
from backupctl.policy.common import PolicyBase
from backupctl.proc import tail_text
from backupctl.redaction import scrub
from backupctl.statefile import inherited_umask

log = structlog.get_logger()


class HookFailed(BackupctlError):
    """A hook exited non-zero, timed out or could not be started."""


def hook_argv(policy: PolicyBase, command: str) -> list[str]:
    """Split ``command`` and resolve its program like a hook path (beside ``policies/``)."""
    argv = shlex.split(command)
    if not argv:
        raise HookFailed("empty hook command")
    program = argv[0]
    if "/" in program:
        argv[0] = str(policy.resolve_hook(program))
    return argv


def run_hook(
    policy: PolicyBase,
    command: str,
    *,
    step: str,
    env: Mapping[str, str],
    timeout: timedelta,
) -> str:
    """Run one hook; return its output. Raises HookFailed naming the hook and the cause."""
    argv = hook_argv(policy, command)
    full_env = {**os.environ, "BACKUPCTL_POLICY": policy.name, "BACKUPCTL_STEP": step, **env}
    if policy.source is not None:
        full_env["BACKUPCTL_POLICY_FILE"] = str(policy.source)
    log.info("hook started", hook=command)
    try:
        proc = subprocess.Popen(
            argv,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # the operator's commands get the operator's umask back, not backupctl's 077
            umask=-1 if (umask := inherited_umask()) is None else umask,
        )
    except OSError as exc:
        raise HookFailed(f"hook {command!r} could not start: {exc.strerror}") from exc
    try:
        raw, _ = proc.communicate(timeout=timeout.total_seconds())
    except subprocess.TimeoutExpired as exc:
        with contextlib.suppress(ProcessLookupError):  # the hook and everything it started
            os.killpg(proc.pid, signal.SIGKILL)
        raw, _ = proc.communicate()
        _log_output(command, scrub(raw.decode(errors="replace")))
        raise HookFailed(f"hook {command!r} timed out after {timeout}") from exc
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    output = scrub(raw.decode(errors="replace"))
    _log_output(command, output)
    if proc.returncode != 0:
        raise HookFailed(
            f"hook {command!r} exited {proc.returncode}: {tail_text(output, 5) or 'no output'}"
        )
    return output


def run_hooks(
    policy: PolicyBase,
    commands: list[str],
    *,
    step: str,
    env: Mapping[str, str],
    timeout: timedelta,
) -> str:
    """Run hooks in order, stopping at the first failure; return a summary."""
    for command in commands:
        run_hook(policy, command, step=step, env=env, timeout=timeout)
    return f"ran {len(commands)} hook(s)" if commands else "no hooks configured"


def _log_output(command: str, output: str) -> None:
    for line in output.splitlines():
        if line.strip():
            log.info("hook output", hook=command, line=line)
