"""Run ``backupctl`` in this process, as ``backupctl.cli.main(argv)`` does for a user.

A subprocess costs ~0.5 s of imports; in-process a run costs milliseconds, which is what
lets the fuzz tests try hundreds of inputs. Standard streams are swapped for buffers
(click's own isolation, stdin is not a terminal), and structlog's configuration, which
``main`` rewrites to point at the swapped stderr, is put back afterwards.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Mapping

import structlog
from click.testing import CliRunner

from backupctl.cli import main
from tests.support.cli import CliResult

#: how the CLI says why it failed: "error: ..." (ours) or "Error: ..." (click's usage errors)
_MESSAGE_RE = re.compile(r"^error: \S", re.IGNORECASE | re.MULTILINE)


class EscapedMain(AssertionError):
    """``main`` let something other than SystemExit out: a bug in the CLI's last line."""


def run_inprocess(argv: list[str], env: Mapping[str, str | None] | None = None) -> CliResult:
    """Run ``backupctl ARGV`` in-process; return its exit code, stdout and stderr."""
    saved_config = structlog.get_config()
    saved_sigterm = signal.getsignal(signal.SIGTERM)
    saved_umask = os.umask(0o022)
    os.umask(saved_umask)
    runner = CliRunner()
    code: int | None = None
    try:
        with runner.isolation(env=env) as (out, err, _mixed):
            try:
                main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException as exc:
                raise EscapedMain(f"main({argv!r}) raised {type(exc).__name__}: {exc}") from exc
            stdout = out.getvalue().decode(errors="replace")
            stderr = err.getvalue().decode(errors="replace")
    finally:
        structlog.configure(**saved_config)
        signal.signal(signal.SIGTERM, saved_sigterm)
        os.umask(saved_umask)
    if code is None:
        raise EscapedMain(f"main({argv!r}) returned instead of exiting")
    return CliResult(code, stdout, stderr)


def problems_with(result: CliResult, allowed: set[int]) -> list[str]:
    """What is wrong with a run's outcome: an exit code outside ``allowed``, a traceback,
    an internal error, or a failure without a message."""
    found = []
    if result.code not in allowed:
        found.append(f"exit {result.code} not in {sorted(allowed)}")
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        found.append("a traceback was printed")
    if "internal error" in result.stderr:
        found.append("an internal error (a bug) was reported")
    if result.code != 0 and not _MESSAGE_RE.search(result.stderr):
        found.append("failed without an error message on stderr")
    return found
