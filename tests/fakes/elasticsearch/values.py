"""Value formats Elasticsearch uses on the wire: booleans, time values, byte sizes, ids,
dates and index settings (flat ``index.*`` keys with string values)."""

from __future__ import annotations

import base64
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from .errors import EsError, illegal_argument

_TIME_UNITS = {
    "nanos": 1e-9,
    "micros": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_TIME_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(nanos|micros|ms|s|m|h|d)\s*$")
_BYTE_UNITS = ["b", "kb", "mb", "gb", "tb", "pb"]


def new_uuid() -> str:
    """A random id in the 22-character URL-safe base64 form Elasticsearch uses."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def now_millis() -> int:
    return int(time.time() * 1000)


def iso_millis(millis: int) -> str:
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def parse_bool(value: Any) -> bool:
    """Strict boolean parsing: only ``true``/``false`` (an empty query value means true)."""
    if isinstance(value, bool):
        return value
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise illegal_argument(
        f"Failed to parse value [{value}] as only [true] or [false] are allowed."
    )


def parse_time(value: Any, name: str) -> float | None:
    """A time value (``30s``, ``500ms``, ``1m``) in seconds; ``-1`` means none."""
    text = str(value)
    if text in ("-1", "-1s"):
        return None
    if text == "0":
        return 0.0
    match = _TIME_RE.match(text)
    if match is None:
        raise EsError(
            400,
            "parse_exception",
            f"failed to parse setting [{name}] with value [{text}] as a time value: "
            "unit is missing or unrecognized",
        )
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def human_bytes(size: int) -> str:
    """``ByteSizeValue.toString``: the largest unit, one decimal unless it is ``.0``."""
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(_BYTE_UNITS) - 1:
        value /= 1024
        unit += 1
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return f"{text}{_BYTE_UNITS[unit]}"


def bytes_in(size: int, unit: str | None) -> str:
    """A size for ``_cat``: human readable, or whole ``unit``s when ``bytes=unit``."""
    if unit is None:
        return human_bytes(size)
    if unit not in _BYTE_UNITS:
        raise illegal_argument(f"failed to parse [{unit}]")
    return str(size // (1024 ** _BYTE_UNITS.index(unit)))


def _setting_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_setting_text(v) for v in value]
    return None if value is None else str(value)


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested or dotted settings to flat ``a.b.c`` keys with string values."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{full}."))
        else:
            flat[full] = _setting_text(value)
    return flat


def index_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Index settings as Elasticsearch normalises them: flat, every key under ``index.``."""
    flat = flatten(settings or {})
    return {k if k.startswith("index.") else f"index.{k}": v for k, v in flat.items()}


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat ``a.b.c`` keys back to nested objects (the default rendering)."""
    nested: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # "a" and "a.b" both set: keep the flat key
                node[key] = value
                break
            node = child
        else:
            node[parts[-1]] = value
    return nested


def as_list(value: Any) -> list[str]:
    """A comma separated string or a list of strings, as index and snapshot lists are sent."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(item) for item in value]
    raise illegal_argument(f"malformed value [{value}], expected a string or an array")


def utc_date(millis: int) -> str:
    """``yyyy.MM.dd`` of an epoch-millisecond instant in UTC (backing index names)."""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y.%m.%d")
