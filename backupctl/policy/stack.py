"""Stack files (``stacks/*.yaml`` beside ``policies/``): which policies are restored
together to one point in time, in what order, and which may run side by side.

```yaml
version: 1
name: app
policies: [configs, shop-db, search, llm]   # restored in this order ...
parallel: [[search, llm]]                   # ... unless a group here may run together
objectives: {rto: 4h, max_skew: 30m}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from backupctl.errors import NotFoundError, PolicyError, PolicyProblem
from backupctl.policy.common import StrictModel, _checked_name
from backupctl.policy.loader import problems_from
from backupctl.policy.types import Duration, Schedule
from backupctl.policy.yamlsrc import load_yaml


class StackObjectives(StrictModel):
    rto: Duration | None = Field(None, description="the whole stack back within this")
    rpo: Duration | None = Field(None, description="every system's recovery point within this")
    max_skew: Duration | None = Field(
        None, description="the most one system's point may lag the stack's target"
    )


class StackDrill(StrictModel):
    schedule: Schedule | None = Field(
        "quarterly",
        description="when run-due and the scheduler drill the whole stack (host time; null: never)",
    )


class Stack(StrictModel):
    """A stack file."""

    version: Literal[1]
    name: str
    policies: list[str] = Field(min_length=1, description="restored in this order")
    parallel: list[list[str]] = Field(
        default_factory=list, description="groups of policies that may be restored together"
    )
    objectives: StackObjectives = StackObjectives()
    drill: StackDrill = StackDrill()
    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        return self._source

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _checked_name(value, "stack")

    @field_validator("policies")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        for name in value:
            _checked_name(name, "policy")
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"listed twice: {', '.join(twice)}")
        return value

    @model_validator(mode="after")
    def _groups(self) -> Stack:
        seen: set[str] = set()
        for group in self.parallel:
            unknown = [name for name in group if name not in self.policies]
            if unknown:
                raise ValueError(f"parallel: {', '.join(unknown)} not in policies")
            if len(group) < 2:
                raise ValueError("parallel: a group holds at least two policies")
            again = seen & set(group)
            if again:
                raise ValueError(f"parallel: {', '.join(sorted(again))} in two groups")
            seen |= set(group)
        return self

    def waves(self) -> list[list[str]]:
        """The policies in the order they are restored: one wave after another, the
        policies of a wave side by side (a parallel group starts where its first member
        is listed)."""
        waves: list[list[str]] = []
        placed: set[str] = set()
        for name in self.policies:
            if name in placed:
                continue
            group = next((g for g in self.parallel if name in g), [name])
            wave = [member for member in self.policies if member in group]
            waves.append(wave)
            placed |= set(wave)
        return waves


def stack_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_stacks(directory: Path) -> list[Stack]:
    """Every stack file in ``directory`` (none when it does not exist). Raises PolicyError
    with each problem's file and line."""
    stacks, problems = [], list[PolicyProblem]()
    for path in stack_files(directory):
        doc = load_yaml(path)
        if doc.problems:
            problems += doc.problems
            continue
        try:
            stack = Stack.model_validate(doc.data)
        except ValidationError as exc:
            problems += problems_from(exc, doc, str(path))
            continue
        stack._source = path
        stacks.append(stack)
    names = [s.name for s in stacks]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(PolicyProblem(str(directory), 1, "name", f"stack {name!r} defined twice"))
    if problems:
        raise PolicyError(problems)
    return stacks


def find_stack(directory: Path, name: str) -> Stack:
    """The stack called ``name``. Raises NotFoundError, PolicyError."""
    for stack in load_stacks(directory):
        if stack.name == name:
            return stack
    known = ", ".join(s.name for s in load_stacks(directory)) or "none"
    raise NotFoundError(f"no stack {name!r} in {directory} (stacks: {known})")
