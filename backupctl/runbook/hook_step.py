"""The runbook step that runs policy hooks (stop or start services), for every driver."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from backupctl.hooks import run_hooks
from backupctl.policy.common import PolicyBase
from backupctl.runbook.step import RunContext, Step


class HookStep(Step):
    """Run ``commands``; undo by running ``undo`` (the opposite hooks)."""

    def __init__(
        self,
        name: str,
        policy: PolicyBase,
        commands: list[str],
        undo: list[str],
        env: Mapping[str, str],
        timeout: timedelta,
    ):
        self.name, self.policy, self.commands, self.undo = name, policy, commands, undo
        self.env, self.timeout = env, timeout

    def describe(self, ctx: RunContext) -> str:
        return f"run {len(self.commands)} hook(s)" if self.commands else "no hooks configured"

    def hooks(self) -> list[str]:
        return list(self.commands)

    def _run(self, commands: list[str], step: str) -> str:
        return run_hooks(self.policy, commands, step=step, env=self.env, timeout=self.timeout)

    def run(self, ctx: RunContext) -> str:
        return self._run(self.commands, self.name)

    def compensate(self, ctx: RunContext) -> str:
        return self._run(self.undo, f"undo-{self.name}")
