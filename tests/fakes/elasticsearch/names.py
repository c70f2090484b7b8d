"""Names: validation of index and snapshot names, and multi-target expressions
(comma lists, ``*`` wildcards, ``_all`` and ``-exclusions``) over a set of names."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .errors import EsError, invalid_alias_name, invalid_index_name, invalid_snapshot_name

# Strings.INVALID_FILENAME_CHARS, in the order Elasticsearch prints them
_INVALID_CHARS = ("\\", "/", "*", "?", '"', "<", ">", "|", " ", ",")
_INVALID_TEXT = '[ , ", *, \\, <, |, ,, >, /, ?]'
MAX_NAME_BYTES = 255


def has_wildcard(expression: str) -> bool:
    return "*" in expression or expression == "_all"


def simple_match(pattern: str, name: str) -> bool:
    """``Regex.simpleMatch``: ``*`` is the only wildcard."""
    if pattern == "_all":
        return True
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name) is not None


def expand(expressions: Iterable[str], names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Resolve ``expressions`` against ``names``: (matched names, missing concrete names).

    ``-pattern`` excludes earlier matches once a wildcard has been seen; a list that
    starts with one excludes from everything (``SnapshotUtils.filterIndices``).
    """
    pool = list(names)
    matched: dict[str, None] = {}
    missing: list[str] = []
    wildcard_seen = False
    expressions = list(expressions)
    if expressions and expressions[0].startswith("-"):
        expressions.insert(0, "*")
    for expression in expressions:
        if expression.startswith("-") and wildcard_seen:
            for name in [n for n in matched if simple_match(expression[1:], n)]:
                del matched[name]
        elif has_wildcard(expression):
            wildcard_seen = True
            matched.update((n, None) for n in pool if simple_match(expression, n))
        elif expression in pool:
            matched[expression] = None
        else:
            missing.append(expression)
    return list(matched), missing


def validate_index_name(
    name: str, invalid: Callable[[str, str], EsError] = invalid_index_name
) -> None:
    """``MetadataCreateIndexService.validateIndexOrAliasName`` and friends."""
    if not name:
        raise invalid(name, "must not be empty")
    if any(char in name for char in _INVALID_CHARS):
        raise invalid(name, f"must not contain the following characters {_INVALID_TEXT}")
    if "#" in name:
        raise invalid(name, "must not contain '#'")
    if ":" in name:
        raise invalid(name, "must not contain ':'")
    if name[0] in "_-+":
        raise invalid(name, "must not start with '_', '-', or '+'")
    if name != name.lower():
        raise invalid(name, "must be lowercase")
    if name in (".", ".."):
        raise invalid(name, "must not be '.' or '..'")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise invalid(name, f"index name is too long, ({len(name.encode())} > 255)")


def validate_alias_name(name: str) -> None:
    """The same rules, reported as ``InvalidAliasNameException``."""
    validate_index_name(name, invalid_alias_name)


def validate_snapshot_name(repository: str, name: str) -> None:
    """``SnapshotsService.validate``."""
    problems = [
        (not name, "cannot be empty"),
        (any(char.isspace() for char in name), "must not contain whitespace"),
        ("," in name, "must not contain ','"),
        ("#" in name, "must not contain '#'"),
        (name.startswith("_"), "must not start with '_'"),
        (name != name.lower(), "must be lowercase"),
        (
            any(char in name for char in _INVALID_CHARS),
            f"must not contain the following characters {_INVALID_TEXT}",
        ),
    ]
    for failed, why in problems:
        if failed:
            raise invalid_snapshot_name(repository, name, why)
