"""Requests, responses and the route table.

Routes are matched like Elasticsearch's path trie: a literal segment beats a
``{placeholder}`` at the same position, a path no route matches answers 400 ``no handler
found for uri``, a path some route matches with another method answers 405. A query
parameter the route does not declare is refused (``contains unrecognized parameter``),
as Elasticsearch does, so a typo in a driver fails loudly.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cluster import Targets
from .errors import EsError, illegal_argument
from .values import as_list, parse_bool, parse_time

if TYPE_CHECKING:
    from .node import Node

COMMON_PARAMS = frozenset({"pretty", "human", "error_trace", "filter_path"})
# Real parameters the double does not implement: refused, rather than silently ignored.
UNSUPPORTED_PARAMS = frozenset(
    {
        "routing",
        "pipeline",
        "version",
        "version_type",
        "if_seq_no",
        "if_primary_term",
        "require_alias",
        "require_data_stream",
        "_source_includes",
        "_source_excludes",
        "stored_fields",
        "preference",
        "df",
        "default_operator",
        "analyzer",
        "analyze_wildcard",
        "lenient",
        "min_score",
        "terminate_after",
        "include_defaults",
        "features",
        "after",
        "from_sort_value",
        "slm_policy_filter",
        "index_details",
        "wait_for_events",
        "list_executed_pipelines",
        "include_source_on_error",
        "preserve_existing",
        "reopen",
        "pri",
        "help",
    }
)
INDICES_OPTIONS = ("allow_no_indices", "expand_wildcards", "ignore_unavailable")
CAT_PARAMS = ("format", "h", "v", "s", "bytes", "time", "local", "master_timeout")
# RestRequest.Method, in declaration order (how "allowed: [...]" lists them)
METHOD_ORDER = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE", "CONNECT"]


@dataclass
class Request:
    node: Node
    method: str
    path: str
    uri: str
    params: dict[str, str]
    query: dict[str, str]
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON (``None`` when empty)."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise EsError(400, "x_content_parse_exception", f"[1:1] {error}") from None

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise EsError(400, "parse_exception", "request body is required to be an object")
        return body

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def flag(self, name: str, default: bool) -> bool:
        return parse_bool(self.query[name]) if name in self.query else default

    def seconds(self, name: str, default: float | None) -> float | None:
        return parse_time(self.query[name], name) if name in self.query else default

    def targets(self, default: Targets, forbid_closed: bool | None = None) -> Targets:
        wildcards = default.wildcards
        if "expand_wildcards" in self.query:
            values = as_list(self.query["expand_wildcards"])
            for value in values:
                if value not in ("open", "closed", "hidden", "none", "all"):
                    raise illegal_argument(
                        "No enum constant org.elasticsearch.action.support.IndicesOptions."
                        f"WildcardStates.{value.upper()}"
                    )
            wildcards = frozenset(v for v in values if v != "none")
        return Targets(
            wildcards=wildcards,
            ignore_unavailable=self.flag("ignore_unavailable", default.ignore_unavailable),
            allow_no_indices=self.flag("allow_no_indices", default.allow_no_indices),
            forbid_closed=default.forbid_closed if forbid_closed is None else forbid_closed,
            data_streams=default.data_streams,
        )


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, Any] = field(default_factory=dict)  # a list value: repeated header
    text: str | None = None


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    pattern: str
    handler: Handler
    params: frozenset[str]

    @property
    def segments(self) -> list[str]:
        return [s for s in self.pattern.split("/") if s]

    def bind(self, segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
        """(specificity, path parameters) when ``segments`` fit this route."""
        mine = self.segments
        if len(mine) != len(segments):
            return None
        params: dict[str, str] = {}
        score: list[int] = []
        for expected, actual in zip(mine, segments, strict=True):
            if expected.startswith("{"):
                params[expected[1:-1]] = actual
                score.append(0)
            elif expected == actual:
                score.append(1)
            else:
                return None
        return tuple(score), params


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, methods: str, pattern: str, handler: Handler, params: Iterable[str] = ()) -> None:
        self.routes.append(
            Route(
                frozenset(methods.split(",")), pattern, handler, frozenset(params) | COMMON_PARAMS
            )
        )

    def match(self, method: str, segments: list[str], uri: str) -> tuple[Route, dict[str, str]]:
        bound = [(b, r) for r in self.routes if (b := r.bind(segments)) is not None]
        if not bound:
            raise NoRoute(400, {"error": f"no handler found for uri [{uri}] and method [{method}]"})
        fitting = [(b, r) for b, r in bound if method in r.methods]
        if fitting:
            (_, params), route = max(fitting, key=lambda item: item[0][0])
            return route, params
        best = max(b[0] for b, _ in bound)
        allowed = {m for b, r in bound if b[0] == best for m in r.methods}
        listed = ", ".join(sorted(allowed, key=METHOD_ORDER.index))
        raise NoRoute(
            405,
            {
                "error": f"Incorrect HTTP method for uri [{uri}] and method [{method}], "
                f"allowed: [{listed}]",
                "status": 405,
            },
            {"Allow": ",".join(sorted(allowed, key=METHOD_ORDER.index))},
        )


class NoRoute(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body["error"])
        self.status = status
        self.body = body
        self.headers = headers or {}


def check_params(route: Route, path: str, query: Mapping[str, str]) -> None:
    """Refuse parameters the endpoint does not know, as ``BaseRestHandler`` does (and,
    loudly, those the double does not implement)."""
    for name in query:
        if name in UNSUPPORTED_PARAMS:
            raise illegal_argument(
                f"parameter [{name}] of [{path}] is not supported by the Elasticsearch test double"
            )
    unknown = [name for name in query if name not in route.params]
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(route.params), n=3, cutoff=0.6)
        hint = f" -> did you mean {' or '.join(f'[{c}]' for c in close)}?" if close else ""
        parts.append(f"[{name}]{hint}")
    noun = "parameter" if len(unknown) == 1 else "parameters"
    raise illegal_argument(f"request [{path}] contains unrecognized {noun}: {', '.join(parts)}")
