"""A small subset of the query DSL, enough for ``_count``: ``match_all``, ``match_none``,
``term``, ``terms``, ``match``, ``match_phrase``, ``prefix``, ``wildcard``, ``range``,
``exists``, ``ids`` and ``bool``; and ``q=field:value`` in the URL.

Matching is naive: no analysis beyond lower-cased whitespace tokens for ``match``, and
``term`` compares values exactly. Any other query is refused loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import EsError
from .names import simple_match

Source = dict[str, Any]
Matcher = Callable[[str, Source, Any], bool]
KNOWN_ELSEWHERE = {
    "query_string",
    "simple_query_string",
    "nested",
    "geo_distance",
    "fuzzy",
    "regexp",
    "script",
    "multi_match",
    "function_score",
    "constant_score",
    "dis_max",
    "match_bool_prefix",
    "terms_set",
    "knn",
}


def values_at(source: Any, path: str) -> list[Any]:
    """All values at dotted ``path`` (arrays flattened), as a field lookup sees them."""
    current = [source]
    for part in path.split("."):
        following: list[Any] = []
        for node in current:
            if isinstance(node, dict) and part in node:
                value = node[part]
                following.extend(value if isinstance(value, list) else [value])
            elif isinstance(node, list):
                following.extend(n[part] for n in node if isinstance(n, dict) and part in n)
        current = following
    return [v for v in current if v is not None]


def _single(body: Any, name: str) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise EsError(400, "parsing_exception", f"[{name}] query malformed, no start_object")
    return next(iter(body.items()))


def _term(doc_id: str, source: Source, body: Any) -> bool:
    field, spec = _single(body, "term")
    wanted = spec.get("value") if isinstance(spec, dict) else spec
    return any(v == wanted or str(v) == str(wanted) for v in values_at(source, field))


def _terms(doc_id: str, source: Source, body: Any) -> bool:
    field, wanted = _single({k: v for k, v in body.items() if k != "boost"}, "terms")
    options = {str(w) for w in wanted}
    return any(str(v) in options for v in values_at(source, field))


def _tokens(value: Any) -> set[str]:
    return set(str(value).lower().split())


def _match(doc_id: str, source: Source, body: Any) -> bool:
    field, spec = _single(body, "match")
    query = spec.get("query") if isinstance(spec, dict) else spec
    operator = spec.get("operator", "or").lower() if isinstance(spec, dict) else "or"
    wanted = _tokens(query)
    for value in values_at(source, field):
        have = _tokens(value)
        if (wanted <= have) if operator == "and" else bool(wanted & have):
            return True
    return False


def _match_phrase(doc_id: str, source: Source, body: Any) -> bool:
    field, spec = _single(body, "match_phrase")
    query = str(spec.get("query") if isinstance(spec, dict) else spec).lower()
    return any(query in str(v).lower() for v in values_at(source, field))


def _prefix(doc_id: str, source: Source, body: Any) -> bool:
    field, spec = _single(body, "prefix")
    wanted = str(spec.get("value") if isinstance(spec, dict) else spec)
    return any(str(v).startswith(wanted) for v in values_at(source, field))


def _wildcard(doc_id: str, source: Source, body: Any) -> bool:
    field, spec = _single(body, "wildcard")
    pattern = str(spec.get("value") if isinstance(spec, dict) else spec)
    return any(simple_match(pattern, str(v)) for v in values_at(source, field))


def _range(doc_id: str, source: Source, body: Any) -> bool:
    field, spec = _single(body, "range")
    checks = {
        "gt": lambda v, b: v > b,
        "gte": lambda v, b: v >= b,
        "lt": lambda v, b: v < b,
        "lte": lambda v, b: v <= b,
    }
    bounds = [(checks[k], b) for k, b in spec.items() if k in checks]
    for value in values_at(source, field):
        try:
            if all(check(value, bound) for check, bound in bounds):
                return True
        except TypeError:
            continue
    return False


def _exists(doc_id: str, source: Source, body: Any) -> bool:
    return bool(values_at(source, body["field"]))


def _ids(doc_id: str, source: Source, body: Any) -> bool:
    return doc_id in {str(v) for v in body.get("values", [])}


def _bool(doc_id: str, source: Source, body: Any) -> bool:
    def clauses(key: str) -> list[Any]:
        value = body.get(key, [])
        return value if isinstance(value, list) else [value]

    must = clauses("must") + clauses("filter")
    should = clauses("should")
    if not all(matches(doc_id, source, q) for q in must):
        return False
    if any(matches(doc_id, source, q) for q in clauses("must_not")):
        return False
    minimum = int(body.get("minimum_should_match", 0 if must else 1)) if should else 0
    return sum(matches(doc_id, source, q) for q in should) >= minimum


def _all_values(source: Any) -> list[Any]:
    if isinstance(source, dict):
        return [v for value in source.values() for v in _all_values(value)]
    if isinstance(source, list):
        return [v for value in source for v in _all_values(value)]
    return [source]


def _any_field(doc_id: str, source: Source, body: Any) -> bool:
    wanted = _tokens(body)
    return any(wanted & _tokens(v) for v in _all_values(source))


_ANY_FIELD = "\x00any_field"  # only from_q builds it
_QUERIES: dict[str, Matcher] = {
    _ANY_FIELD: _any_field,
    "match_all": lambda doc_id, source, body: True,
    "match_none": lambda doc_id, source, body: False,
    "term": _term,
    "terms": _terms,
    "match": _match,
    "match_phrase": _match_phrase,
    "prefix": _prefix,
    "wildcard": _wildcard,
    "range": _range,
    "exists": _exists,
    "ids": _ids,
    "bool": _bool,
}


def matches(doc_id: str, source: Source, query: Any) -> bool:
    kind, body = _single(query, "query")
    matcher = _QUERIES.get(kind)
    if matcher is None:
        if kind in KNOWN_ELSEWHERE:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"query [{kind}] is not supported by the Elasticsearch test double",
            )
        raise EsError(400, "parsing_exception", f"unknown query [{kind}]", line=1, col=12)
    return matcher(doc_id, source, body)


def from_q(q: str) -> dict[str, Any]:
    """``q=field:value`` (or ``q=value``, ``q=*``) as a query."""
    if q in ("*", "*:*"):
        return {"match_all": {}}
    field, sep, value = q.partition(":")
    if not sep:
        return {_ANY_FIELD: field}
    return {"match": {field: value}}
