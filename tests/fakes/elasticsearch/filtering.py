"""``filter_path``: keep (or, with ``-``, drop) the parts of a response named by dotted
paths with ``*`` and ``**`` wildcards."""

from __future__ import annotations

from typing import Any

from .names import simple_match
from .values import as_list

Pattern = list[str]


def filter_path(value: Any, spec: str) -> Any:
    patterns = as_list(spec)
    includes = [p.split(".") for p in patterns if not p.startswith("-")]
    excludes = [p[1:].split(".") for p in patterns if p.startswith("-")]
    result = _include(value, includes) if includes else value
    for pattern in excludes:
        result = _exclude(result, pattern)
    return {} if result is None else result


def _advance(patterns: list[Pattern], key: str) -> list[Pattern]:
    """What remains of ``patterns`` once ``key`` is consumed."""
    following: list[Pattern] = []
    for pattern in patterns:
        head = pattern[0]
        if head == "**":
            following.append(pattern)
            rest = pattern[1:]
            if not rest:
                following.append([])
            elif simple_match(rest[0], key):
                following.append(rest[1:])
        elif simple_match(head, key):
            following.append(pattern[1:])
    return following


def _include(value: Any, patterns: list[Pattern]) -> Any:
    if any(not p for p in patterns):
        return value
    if isinstance(value, list):
        kept = [k for k in (_include(v, patterns) for v in value) if k is not None]
        return kept or None
    if not isinstance(value, dict):
        return None
    kept_map = {}
    for key, child in value.items():
        following = _advance(patterns, key)
        if following:
            kept = _include(child, following)
            if kept is not None:
                kept_map[key] = kept
    return kept_map or None


def _exclude(value: Any, pattern: Pattern) -> Any:
    if isinstance(value, list):
        return [_exclude(v, pattern) for v in value]
    if not isinstance(value, dict) or not pattern:
        return value
    result = {}
    for key, child in value.items():
        following = _advance([pattern], key)
        if any(not p for p in following):
            continue
        kept = child
        for rest in following:
            kept = _exclude(kept, rest)
        result[key] = kept
    return result
