"""Request processing, independent of sockets: content negotiation, authentication,
injected faults, routing, and rendering with the headers the official client checks."""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import json
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from . import api_cluster, api_docs, api_indices, api_snapshots, api_streams
from .errors import EsError, security
from .faults import RecordedRequest
from .filtering import filter_path
from .node import Node
from .routing import Handler, NoRoute, Request, Response, Router, check_params

_VENDOR = re.compile(
    r"application/vnd\.elasticsearch\+([a-z-]+)\s*;\s*compatible-with\s*=\s*(\d+)", re.I
)
_BODY_TYPES = ("application/json", "application/x-ndjson")


# http.max_initial_line_length: Netty's HttpObjectDecoder refuses a longer request line
MAX_INITIAL_LINE = 4096


@dataclass
class RawResponse:
    """What the server writes: ``drop`` (close the connection, write nothing) and
    ``delay`` (seconds to wait first) come from :meth:`FakeControls.drop_answer` and
    :meth:`FakeControls.delay_answer`; ``close``: close the connection after writing."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    drop: bool = False
    delay: float = 0.0
    close: bool = False


@dataclass(frozen=True)
class Security:
    """Basic (``users``: name -> password) and API-key (``api_keys``: id -> secret) auth.
    With neither, security is off, as with ``xpack.security.enabled: false``."""

    users: Mapping[str, str] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.api_keys)

    def authenticate(self, header: str | None, uri: str) -> str | None:
        if not self.enabled:
            return None
        if not header:
            raise security(f"missing authentication credentials for REST request [{uri}]")
        scheme, _, credentials = header.partition(" ")
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        name, _, secret = decoded.partition(":")
        if scheme.lower() == "basic":
            if _same(self.users.get(name), secret):
                return name
            raise security(f"unable to authenticate user [{name}] for REST request [{uri}]")
        if scheme.lower() == "apikey" and _same(self.api_keys.get(name), secret):
            return f"api_key:{name}"
        why = (
            f"API key: api key [{name}] does not exist"
            if scheme.lower() == "apikey" and name not in self.api_keys
            else "API key: invalid credentials"
        )
        raise security(
            "unable to authenticate with provided credentials and anonymous access is not "
            "allowed for this request",
            additional_unsuccessful_credentials=why,
        )


def _same(expected: str | None, given: str) -> bool:
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())


def build_router() -> Router:
    router = Router()
    for module in (api_cluster, api_indices, api_docs, api_snapshots, api_streams):
        module.register(router)
    return router


def _compat(header: str) -> int | None:
    match = _VENDOR.search(header)
    return int(match.group(2)) if match else None


def _media_error(headers: str, detail: str) -> EsError:
    return EsError(
        400,
        "media_type_header_exception",
        f"Invalid media-type value on headers [{headers}]",
        caused_by=EsError(400, "status_exception", detail),
    )


class App:
    def __init__(self, node: Node, security: Security, compatible_versions: Iterable[int]):
        self.node = node
        self.security = security
        self.versions = frozenset(compatible_versions)
        self.router = build_router()

    def negotiate(self, headers: Mapping[str, str], body: bytes) -> int | None:
        """The ``compatible-with`` version asked for, after Elasticsearch's checks."""
        accept = headers.get("accept") or ""
        content_type = headers.get("content-type") or ""
        wanted = _compat(accept)
        sent = _compat(content_type)
        for name, version in (("Accept", wanted), ("Content-Type", sent)):
            if version is not None and version not in self.versions:
                allowed = " or ".join(str(v) for v in sorted(self.versions))
                raise _media_error(
                    name, f"{name} version must be either version {allowed}, but found {version}"
                )
        if content_type and body and (wanted != sent):
            raise _media_error(
                "Accept, Content-Type",
                "A compatible version is required on both Content-Type and Accept headers if "
                "either one has requested a compatible version and the compatible versions "
                f"must match. Accept={accept or None}, Content-Type={content_type}",
            )
        base = _VENDOR.sub(r"application/\1", content_type).split(";")[0].strip().lower()
        if body and content_type and base not in _BODY_TYPES:
            raise NoRoute(
                406,
                {"error": f"Content-Type header [{content_type}] is not supported", "status": 406},
            )
        return wanted if wanted is not None else sent

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> RawResponse:
        path, _, query_string = target.partition("?")
        segments = [unquote(s) for s in path.split("/") if s]
        clean_path = "/" + "/".join(segments)
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        if headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                body = b"\x00"  # undecodable: fails as malformed content below
        record = RecordedRequest(method, clean_path, query, _loggable(body), headers=dict(headers))
        with self.node.lock:
            self.node.controls.requests.append(record)
        compat = None
        try:
            # the order Elasticsearch checks things in: media types, a handler for the
            # path and method, credentials, then the handler's own parameters
            compat = self.negotiate(headers, body)
            route, params = self.router.match(method, segments, target)
            record.user = self.security.authenticate(headers.get("authorization"), target)
            check_params(route, clean_path, query)
            request = Request(self.node, method, clean_path, target, params, query, body, headers)
            response = self._run(route.handler, request)
        except NoRoute as no_route:
            response = Response(no_route.status, no_route.body, no_route.headers)
        except EsError as error:
            response = Response(error.status, error.body(), dict(error.headers))
        except Exception as error:  # a bug in the double: say so, ES-shaped
            self.node.log_bug(traceback.format_exc())
            response = Response(500, EsError(500, "test_double_exception", repr(error)).body())
        record.status = response.status
        raw = self.render(method, query, response, compat, headers)
        with self.node.lock:
            fault = self.node.controls.answer_fault(method, clean_path)
        if fault is not None:
            if fault.delay is None:
                raw.drop, record.answer = True, "dropped"
            else:
                raw.delay, record.answer = fault.delay, "delayed"
        return raw

    def too_long_line(self, line: str) -> RawResponse:
        """A request line over ``MAX_INITIAL_LINE`` bytes: Netty fails the decoding with
        ``TooLongHttpLineException`` and Elasticsearch answers it as a bad request
        (``RestController.dispatchBadRequest``), then closes the connection (the
        placeholder request Netty makes of it is HTTP/1.0)."""
        method, _, rest = line.partition(" ")
        target = rest.rsplit(" ", 1)[0] if " " in rest else rest
        path = target.partition("?")[0]
        record = RecordedRequest(
            method, "/" + "/".join(unquote(s) for s in path.split("/") if s), {}, None
        )
        error = EsError(
            400,
            "too_long_http_line_exception",
            f"An HTTP line is larger than {MAX_INITIAL_LINE} bytes.",
        )
        record.status = 400
        with self.node.lock:
            self.node.controls.requests.append(record)
        raw = self.render("GET", {}, Response(400, error.body()), None, {})
        raw.close = True
        return raw

    def _run(self, handler: Handler, request: Request) -> Response:
        with self.node.lock:
            injected = self.node.controls.injected_error(request.method, request.path)
            if injected is not None:
                raise injected
            self.node.tick()
            return handler(request)

    def render(
        self,
        method: str,
        query: Mapping[str, str],
        response: Response,
        compat: int | None,
        headers: Mapping[str, str],
    ) -> RawResponse:
        out = [("X-Elastic-Product", "Elasticsearch")]
        if "x-opaque-id" in headers:
            out.append(("X-Opaque-Id", headers["x-opaque-id"]))
        for name, value in response.headers.items():
            out.extend((name, v) for v in (value if isinstance(value, list) else [value]))
        if response.text is not None:
            payload = response.text.encode()
            content_type = "text/plain; charset=UTF-8"
        else:
            payload = self._json(query, response.body)
            content_type = (
                f"application/vnd.elasticsearch+json;compatible-with={compat}"
                if compat is not None
                else "application/json"
            )
        if method == "HEAD":
            payload = b""
        out.append(("Content-Type", content_type))
        out.append(("Content-Length", str(len(payload))))
        return RawResponse(response.status, out, payload)

    @staticmethod
    def _json(query: Mapping[str, str], body: Any) -> bytes:
        if body is None:
            return b""
        if "filter_path" in query:
            body = filter_path(body, query["filter_path"])
        if "pretty" in query and query["pretty"] != "false":
            return (json.dumps(body, indent=2) + "\n").encode()
        return json.dumps(body, separators=(",", ":")).encode()


def _loggable(body: bytes) -> Any:
    """The body as the request log keeps it: JSON, NDJSON lines, text, or None."""
    if not body:
        return None
    text = body.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return text
