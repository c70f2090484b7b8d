"""Dynamic mapping, coarsely: new fields of indexed documents are added to the mapping
with the types Elasticsearch would guess (text + keyword, long, float, boolean, date,
object), ``dynamic: false`` ignores them and ``dynamic: strict`` refuses them.

Fields mapped ``{"type": "nested"}`` (explicitly, in the index's or a template's
mappings: dynamic mapping never guesses ``nested``) are modelled enough for document
counts: each object under a nested field is a Lucene document of its own, hidden behind
its parent, so ``_cat/indices`` and ``_stats`` (which count Lucene documents) see
1 + N documents where ``_count`` (top-level documents) sees 1 (:func:`lucene_docs`).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import EsError

_DATE = re.compile(
    r"^\d{4}[-/]\d{2}[-/]\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)


def _guess(value: Any) -> dict[str, Any] | None:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, str):
        if _DATE.match(value):
            return {"type": "date"}
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    if isinstance(value, dict):
        return {"properties": {}}
    if isinstance(value, list):
        return next((g for g in map(_guess, value) if g is not None), None)
    return None  # null adds no mapping


def _objects(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _has_children(mapping: dict[str, Any]) -> bool:
    """An object or nested field: one whose values are objects with fields of their own."""
    return "properties" in mapping or mapping.get("type") in ("object", "nested")


def apply_dynamic(
    mapping: dict[str, Any], source: dict[str, Any], path: str = "", inherited: str = "true"
) -> None:
    """Add the fields of ``source`` that ``mapping`` lacks, as dynamic mapping does."""
    dynamic = str(mapping.get("dynamic", inherited)).lower()
    properties = mapping.get("properties", {})
    for name, value in source.items():
        known = properties.get(name)
        if known is None:
            guessed = _guess(value)
            if guessed is None or dynamic == "false":
                continue
            if dynamic == "strict":
                raise EsError(
                    400,
                    "strict_dynamic_mapping_exception",
                    f"[1:2] mapping set to strict, dynamic introduction of [{name}] within "
                    f"[{path.rstrip('.') or '_doc'}] is not allowed",
                )
            properties[name] = known = guessed
            mapping["properties"] = properties
        if _has_children(known):
            for child in _objects(value):
                apply_dynamic(known, child, f"{path}{name}.", dynamic)


def lucene_docs(mapping: dict[str, Any], source: dict[str, Any]) -> int:
    """How many Lucene documents ``source`` is: itself plus one per object under a field
    mapped ``nested`` (at any depth, nested inside nested included)."""
    return 1 + _nested_objects(mapping, source)


def _nested_objects(mapping: dict[str, Any], source: dict[str, Any]) -> int:
    total = 0
    properties = mapping.get("properties") or {}
    for name, value in source.items():
        field = properties.get(name)
        if not isinstance(field, dict) or not _has_children(field):
            continue
        for child in _objects(value):
            if field.get("type") == "nested":
                total += 1
            total += _nested_objects(field, child)
    return total
