"""Dynamic mapping, coarsely: new fields of indexed documents are added to the mapping
with the types Elasticsearch would guess (text + keyword, long, float, boolean, date,
object), ``dynamic: false`` ignores them and ``dynamic: strict`` refuses them."""

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
        if "properties" in known:
            for child in _objects(value):
                apply_dynamic(known, child, f"{path}{name}.", dynamic)
