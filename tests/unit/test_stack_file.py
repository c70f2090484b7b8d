"""Stack files: their errors with file and line, and the order their policies come back."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupctl.errors import NotFoundError, PolicyError
from backupctl.policy.stack import find_stack, load_stacks


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_waves_follow_the_order_with_parallel_groups_side_by_side(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "app",
        "version: 1\nname: app\npolicies: [configs, shop-db, search, llm]\n"
        "parallel: [[llm, search]]\nobjectives: {rto: 4h, max_skew: 30m}\n",
    )
    (stack,) = load_stacks(tmp_path)
    assert stack.waves() == [["configs"], ["shop-db"], ["search", "llm"]]
    assert stack.objectives.max_skew is not None
    assert stack.objectives.max_skew.total_seconds() == 1800


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("version: 1\nname: app\npolicies: [a, b, a]\n", 3, "listed twice: a"),
        ("version: 1\nname: app\npolicies: [a, b]\nparallel: [[a, c]]\n", None, "c not in"),
        ("version: 1\nname: app\npolicies: [a, b]\nparallel: [[a]]\n", None, "at least two"),
        ("version: 1\nname: App\npolicies: [a]\n", 2, "stack names are"),
        ("version: 1\nname: app\npolicies: []\n", 3, "at least 1"),
        ("version: 1\nname: app\npolicies: [a]\nwaves: 2\n", 4, "unknown field"),
    ],
)
def test_a_wrong_stack_file_says_where(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    path = _write(tmp_path, "app", text)
    with pytest.raises(PolicyError) as caught:
        load_stacks(tmp_path)
    (problem,) = caught.value.problems
    assert problem.file == str(path) and message in problem.message
    if line is not None:
        assert problem.line == line


def test_an_unknown_stack_names_those_there(tmp_path: Path) -> None:
    _write(tmp_path, "app", "version: 1\nname: app\npolicies: [a]\n")
    with pytest.raises(NotFoundError, match=r"no stack 'web' .* \(stacks: app\)"):
        find_stack(tmp_path, "web")
    assert load_stacks(tmp_path / "none") == []
