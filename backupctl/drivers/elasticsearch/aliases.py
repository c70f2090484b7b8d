"""Aliases around a restore: refusing a replace-mode restore that would give an alias two
write indices, and moving the originals' aliases to renamed copies with every property
(``is_write_index``, ``filter``, routing, ``is_hidden``), undone exactly from what was
saved."""

from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch

from backupctl.catalog.manifest import Manifest
from backupctl.drivers.elasticsearch import inventory
from backupctl.drivers.elasticsearch.client import call
from backupctl.drivers.elasticsearch.details import AliasProperties, SnapshotDetails
from backupctl.drivers.elasticsearch.indices import IndexMap
from backupctl.errors import UsageError
from backupctl.runbook.step import RunContext, Step


def write_alias_conflicts(
    es: Elasticsearch, manifest: Manifest, indices: IndexMap
) -> list[tuple[str, str, list[str]]]:
    """(alias, restored index, live write indices) for every alias the snapshot gives a
    restored index as its write index while another live index is its write index now
    (the alias rolled over since the snapshot). Manifests that did not record aliases
    give none."""
    details = SnapshotDetails.of(manifest)
    restoring = set(indices.plain)
    conflicts = []
    for source in indices.plain:
        recorded = details.indices.get(source)
        for alias, props in ((recorded.aliases if recorded else None) or {}).items():
            if not props.is_write_index:
                continue
            members = inventory.alias_members(es, alias)
            writers = sorted(
                index
                for index, live in members.items()
                if live.is_write_index and index not in restoring
            )
            if writers:
                conflicts.append((alias, source, writers))
    return conflicts


class CheckWriteAliases(Step):
    """replace mode with the snapshot's aliases: refuse, before anything changes, a restore
    that would give an alias a second write index (Elasticsearch would refuse it half-way,
    with the live indices already closed)."""

    name = "check-aliases"

    def __init__(self, es: Elasticsearch, manifest: Manifest, indices: IndexMap):
        self.es, self.manifest, self.indices = es, manifest, indices

    def describe(self, ctx: RunContext) -> str:
        return "check that no write alias of the snapshot has another write index now"

    def run(self, ctx: RunContext) -> str:
        conflicts = write_alias_conflicts(self.es, self.manifest, self.indices)
        if conflicts:
            described = "; ".join(
                f"alias {alias} writes to {', '.join(writers)} now, the snapshot has it write "
                f"to {source}"
                for alias, source, writers in conflicts
            )
            raise UsageError(
                f"restoring with the snapshot's aliases would give an alias two write indices "
                f"({described}: it rolled over since the snapshot); set "
                "restore.include_aliases: false to keep the aliases as they are now, or use "
                "rename mode"
            )
        return "no write alias conflict"


class SwitchAliases(Step):
    """rename mode: move the originals' aliases to the restored indices, atomically, with
    every property; undo moves back exactly what was moved."""

    name = "switch-aliases"

    def __init__(self, es: Elasticsearch, indices: IndexMap):
        self.es, self.indices = es, indices

    def describe(self, ctx: RunContext) -> str:
        return "move the aliases of the original indices to the restored ones (one atomic call)"

    def run(self, ctx: RunContext) -> str:
        current = inventory.aliases_of(self.es, self.indices.plain)
        moves = [
            {
                "alias": alias,
                "from": source,
                "to": self.indices.targets[source],
                "properties": props.model_dump(exclude_none=True),
            }
            for source in self.indices.plain
            for alias, props in sorted(current.get(source, {}).items())
        ]
        if not moves:
            ctx["moved_aliases"] = []
            return "the original indices have no aliases"
        ctx["moved_aliases"] = moves  # journaled first: an undo knows exactly what moved
        call("switch aliases", self.es.indices.update_aliases, actions=_actions(moves))
        return f"moved {len(moves)} alias(es) to the restored indices, properties kept"

    def compensate(self, ctx: RunContext) -> str:
        saved: list[dict[str, Any]] = ctx.get("moved_aliases") or []
        # the switch is atomic, but its answer may have been lost: undo what did move
        now = inventory.aliases_of(self.es, sorted({move["to"] for move in saved}))
        moves = [m for m in saved if m["alias"] in now.get(m["to"], {})]
        if not moves:
            return "no alias was moved"
        back = [{**move, "from": move["to"], "to": move["from"]} for move in moves]
        call("switch aliases back", self.es.indices.update_aliases, actions=_actions(back))
        return f"moved {len(moves)} alias(es) back to the original indices, as they were"


def _actions(moves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for move in moves:
        props = AliasProperties.model_validate(move["properties"], strict=False)
        actions.append({"remove": {"index": move["from"], "alias": move["alias"]}})
        actions.append(props.action(move["to"], move["alias"]))
    return actions
