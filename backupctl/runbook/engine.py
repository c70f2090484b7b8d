"""Run steps in order; on failure undo what was done, in reverse; resume after a crash."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from backupctl.errors import BackupctlError, UsageError
from backupctl.runbook.journal import Journal, now_iso
from backupctl.runbook.step import RunContext, Step, StepResult

log = structlog.get_logger()


class RunbookFailed(BackupctlError):
    """A step failed; what was done has been undone. Carries every step's result."""

    report_path: Path | None = None

    def __init__(self, step: str, cause: BaseException, results: list[StepResult]):
        self.step, self.cause, self.results = step, cause, results
        self.exit_code = cause.exit_code if isinstance(cause, BackupctlError) else 1
        undone = [r.name for r in results if r.status == "compensated"]
        stuck = [r.name for r in results if r.status == "compensation-failed"]
        text = f"step {step!r} failed: {cause}"
        if undone:
            text += f"\nundone: {', '.join(undone)}"
        if stuck:
            text += f"\nCOULD NOT UNDO: {', '.join(stuck)} (see the log; then --rollback)"
        super().__init__(text)


def _in_journal_order(steps: list[Step], journal: Journal) -> list[Step]:
    """``steps`` as the journal recorded them. A journal written by an earlier version may
    list the same steps in another order, without some checks this version added before
    them (e.g. ``check-backup``): it is resumed and undone in its own order. Raises
    UsageError when it names a step this version does not have."""
    names = [r.name for r in journal.steps]
    if [s.name for s in steps] == names:
        return steps
    by_name = {s.name: s for s in steps}
    unknown = [n for n in names if n not in by_name]
    if unknown or len(by_name) != len(steps) or len(set(names)) != len(names):
        raise UsageError(
            f"the interrupted {journal.kind} {journal.run_id} of {journal.policy} was planned "
            f"with steps this version cannot replay ({', '.join(unknown) or 'duplicates'}); "
            f"finish or undo it with the version that started it (journal steps: "
            f"{', '.join(names)})"
        )
    return [by_name[n] for n in names]


@dataclass
class PlannedStep:
    name: str
    description: str
    hooks: list[str]
    bytes: int | None = None
    basis: str = ""


class Runbook:
    """Steps plus a journal. Create with the same steps to resume or roll back a journal."""

    def __init__(self, steps: list[Step], journal: Journal):
        self.steps, self.journal = _in_journal_order(steps, journal), journal
        self.ctx = RunContext(journal.run_id, journal.values)

    def plan(self) -> list[PlannedStep]:
        """Every step with what it will do and the hooks it calls; changes nothing."""
        return [
            PlannedStep(s.name, s.describe(self.ctx), s.hooks(), s.work_bytes(), s.basis())
            for s in self.steps
        ]

    def run(self) -> list[StepResult]:
        """Run (or resume) every step not yet done.

        Returns the results. Raises RunbookFailed after compensating, in reverse order,
        every step that ran (the failed one included: it may have done part of its work).
        """
        for step, result in zip(self.steps, self.journal.steps, strict=True):
            if result.status == "running" and not step.resumable:
                raise UsageError(
                    f"step {step.name} was interrupted part-way and cannot be run again "
                    f"safely; undo the run instead: backupctl {self.journal.kind} "
                    f"{self.journal.policy} --rollback"
                )
        self.journal.state = "running"
        self.journal.save()
        for index, (step, result) in enumerate(zip(self.steps, self.journal.steps, strict=True)):
            if result.status == "ok":
                continue
            structlog.contextvars.bind_contextvars(step=step.name)
            try:
                self._run_step(step, result)
            except BaseException as exc:
                log.error("step failed", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
                self._compensate(index)
                self._finish("failed", f"{step.name}: {exc}")
                raise RunbookFailed(step.name, exc, self.journal.steps) from exc
            finally:
                structlog.contextvars.unbind_contextvars("step")
        self._finish("completed")
        return self.journal.steps

    def rollback(self) -> list[StepResult]:
        """Undo every step of an interrupted run. Raises RunbookFailed if something stays."""
        ran = [i for i, r in enumerate(self.journal.steps) if r.status not in ("pending",)]
        if ran:
            self._compensate(max(ran))
        stuck = [r for r in self.journal.steps if r.status == "compensation-failed"]
        self._finish("rolled-back" if not stuck else "interrupted")
        if stuck:
            raise RunbookFailed(stuck[0].name, BackupctlError(stuck[0].detail), self.journal.steps)
        return self.journal.steps

    def restart(self) -> None:
        """Make a failed run whose steps were all undone ready to run again from its first
        step (the same run id; what the failed attempt recorded is dropped). Raises
        UsageError when something could not be undone."""
        if self.journal.state != "failed" or any(
            r.status not in ("pending", "compensated") for r in self.journal.steps
        ):
            raise UsageError(f"run {self.journal.run_id} was not undone whole: it cannot restart")
        self.journal.steps = [StepResult(r.name) for r in self.journal.steps]
        self.journal.values.pop("checks", None)
        self.journal.state, self.journal.error, self.journal.finished_at = "running", None, None
        self.journal.save()

    def _run_step(self, step: Step, result: StepResult) -> None:
        result.status, result.detail = "running", ""
        self.journal.save()
        log.info("step started", description=step.describe(self.ctx))
        started = time.monotonic()
        try:
            result.detail = step.run(self.ctx)
        except BaseException as exc:
            result.status, result.detail = "failed", str(exc)
            raise
        finally:
            result.seconds = round(time.monotonic() - started, 3)
            self.journal.save()
        result.status = "ok"
        result.bytes, result.basis = step.work_bytes(), step.basis()
        self.journal.save()
        log.info("step done", seconds=result.seconds, detail=result.detail)

    def _compensate(self, last: int) -> None:
        for index in range(last, -1, -1):
            step, result = self.steps[index], self.journal.steps[index]
            if result.status not in ("ok", "failed", "running", "compensation-failed"):
                continue
            structlog.contextvars.bind_contextvars(step=step.name)
            try:
                detail = step.compensate(self.ctx)
                result.status = "compensated"
                result.detail = f"{result.detail} | undone: {detail}".strip(" |")
                log.info("step undone", detail=detail)
            except Exception as exc:  # keep undoing the others; report this one
                result.status = "compensation-failed"
                result.detail = f"{result.detail} | undo failed: {exc}".strip(" |")
                log.error("could not undo step", error=str(exc))
            finally:
                structlog.contextvars.unbind_contextvars("step")
                self.journal.save()

    def _finish(self, state: str, error: str | None = None) -> None:
        self.journal.state = state  # type: ignore[assignment]
        self.journal.error = error
        self.journal.finished_at = now_iso()
        self.journal.save()
