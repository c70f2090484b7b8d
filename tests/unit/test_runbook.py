"""The runbook engine: order, journal, compensation in reverse, resume and rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backupctl.errors import BackupctlError, UsageError, VerificationFailed
from backupctl.runbook.engine import Runbook, RunbookFailed
from backupctl.runbook.journal import Journal
from backupctl.runbook.step import RunContext, Step, StepResult


class Recording(Step):
    def __init__(
        self,
        name: str,
        events: list[str],
        fail: BaseException | None = None,
        fail_undo: bool = False,
    ):
        self.name, self.events, self.fail, self.fail_undo = name, events, fail, fail_undo

    def describe(self, ctx: RunContext) -> str:
        return f"do {self.name}"

    def run(self, ctx: RunContext) -> str:
        self.events.append(f"run {self.name}")
        ctx[self.name] = "done"
        if self.fail is not None:
            raise self.fail
        return f"{self.name} ok"

    def compensate(self, ctx: RunContext) -> str:
        self.events.append(f"undo {self.name}")
        if self.fail_undo:
            raise BackupctlError("cannot undo")
        return f"{self.name} undone"


def _runbook(tmp_path: Path, steps: list[Step], journal: Journal | None = None) -> Runbook:
    journal = journal or Journal(
        tmp_path / "r.json", "run-1", "restore", "db", {}, [StepResult(s.name) for s in steps]
    )
    return Runbook(steps, journal)


def test_steps_run_in_order_and_are_journaled(tmp_path: Path) -> None:
    events: list[str] = []
    runbook = _runbook(tmp_path, [Recording(n, events) for n in ("a", "b", "c")])
    assert [p.description for p in runbook.plan()] == ["do a", "do b", "do c"]
    results = runbook.run()
    assert events == ["run a", "run b", "run c"]
    assert [r.status for r in results] == ["ok"] * 3
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["state"] == "completed" and saved["values"] == {
        "a": "done",
        "b": "done",
        "c": "done",
    }


def test_failure_undoes_in_reverse_including_the_failed_step(tmp_path: Path) -> None:
    events: list[str] = []
    steps = [
        Recording("a", events),
        Recording("b", events),
        Recording("c", events, fail=VerificationFailed("row counts differ")),
        Recording("d", events),
    ]
    with pytest.raises(RunbookFailed) as caught:
        _runbook(tmp_path, steps).run()
    assert events == ["run a", "run b", "run c", "undo c", "undo b", "undo a"]
    assert caught.value.step == "c" and caught.value.exit_code == 3
    assert "step 'c' failed: row counts differ" in str(caught.value)
    statuses = [r.status for r in caught.value.results]
    assert statuses == ["compensated", "compensated", "compensated", "pending"]
    assert Journal.load(tmp_path / "r.json").state == "failed"


def test_an_undo_that_fails_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    events: list[str] = []
    steps = [
        Recording("a", events),
        Recording("b", events, fail_undo=True),
        Recording("c", events, fail=BackupctlError("boom")),
    ]
    with pytest.raises(RunbookFailed) as caught:
        _runbook(tmp_path, steps).run()
    assert events == ["run a", "run b", "run c", "undo c", "undo b", "undo a"]
    assert "COULD NOT UNDO: b" in str(caught.value)
    journal = Journal.load(tmp_path / "r.json")
    assert journal.unfinished  # --rollback is still offered


def test_resume_continues_after_the_last_finished_step(tmp_path: Path) -> None:
    events: list[str] = []
    steps = [Recording(n, events) for n in ("a", "b", "c")]
    journal = Journal(
        tmp_path / "r.json",
        "run-1",
        "restore",
        "db",
        {},
        [StepResult("a", "ok"), StepResult("b", "running"), StepResult("c")],
        values={"a": "done"},
    )
    journal.save()  # what a killed process leaves behind
    loaded = Journal.load(tmp_path / "r.json")
    assert loaded.unfinished
    _runbook(tmp_path, steps, loaded).run()
    assert events == ["run b", "run c"]
    assert not Journal.load(tmp_path / "r.json").unfinished


def test_a_step_that_cannot_resume_refuses_and_changes_nothing(tmp_path: Path) -> None:
    events: list[str] = []
    replay = Recording("replay", events)
    replay.resumable = False
    journal = Journal(
        tmp_path / "r.json",
        "run-1",
        "restore",
        "db",
        {},
        [StepResult("a", "ok"), StepResult("replay", "running"), StepResult("c")],
    )
    journal.save()
    loaded = Journal.load(tmp_path / "r.json")
    with pytest.raises(UsageError, match=r"replay was interrupted part-way.*--rollback"):
        _runbook(tmp_path, [Recording("a", events), replay, Recording("c", events)], loaded).run()
    assert events == []
    assert Journal.load(tmp_path / "r.json").unfinished


def test_rollback_undoes_what_an_interrupted_run_did(tmp_path: Path) -> None:
    events: list[str] = []
    steps = [Recording(n, events) for n in ("a", "b", "c")]
    journal = Journal(
        tmp_path / "r.json",
        "run-1",
        "restore",
        "db",
        {},
        [StepResult("a", "ok"), StepResult("b", "running"), StepResult("c")],
    )
    results = _runbook(tmp_path, steps, journal).rollback()
    assert events == ["undo b", "undo a"]
    assert [r.status for r in results] == ["compensated", "compensated", "pending"]
    assert Journal.load(tmp_path / "r.json").state == "rolled-back"


def test_a_journal_naming_an_unknown_step_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.json", "r", "restore", "db", {}, [StepResult("x")])
    with pytest.raises(UsageError, match="cannot replay \\(x\\); finish or undo it with the"):
        Runbook([Recording("y", [])], journal)


def test_an_older_journal_is_resumed_and_undone_in_its_own_order(tmp_path: Path) -> None:
    """An earlier version planned a, c, b without the check this version runs first: the
    run goes on in the journal's order, and the check is not run after the fact."""
    events: list[str] = []
    steps = [Recording(n, events) for n in ("check", "a", "b", "c")]
    journal = Journal(
        tmp_path / "r.json",
        "run-1",
        "restore",
        "db",
        {},
        [StepResult("a", "ok"), StepResult("c", "ok"), StepResult("b")],
    )
    results = _runbook(tmp_path, steps, journal).run()
    assert events == ["run b"]
    assert [r.name for r in results] == ["a", "c", "b"]
    events.clear()
    journal = Journal(
        tmp_path / "s.json",
        "run-2",
        "restore",
        "db",
        {},
        [StepResult("a", "ok"), StepResult("c", "ok"), StepResult("b")],
    )
    _runbook(tmp_path, steps, journal).rollback()
    assert events == ["undo c", "undo a"]
