"""A real HTTP receiver for notification tests: records what it is sent, answers as scripted.

    with WebhookReceiver(replies=[503, 503, 200]) as hook:
        url = hook.url("/hook")            # http://127.0.0.1:PORT/hook
        ...                                # something POSTs to url
        first = hook.wait_for(1)[0]        # ReceivedRequest
        first.json, first.headers["Authorization"], first.path

Replies are used in order, one per request; once they run out every request gets
``default`` (200 unless told otherwise). A reply is a status code or a ``Reply`` (status,
body, delay, headers). A delayed reply is cut short when the receiver closes, so a test of a
hanging server does not wait out its delay.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request: ``status`` after ``delay`` seconds."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    #: extra response headers, e.g. ``{"Location": ...}`` for a redirect
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it."""

    method: str
    #: the request target: path and query string (``/hook?key=1``)
    target: str
    #: case-insensitive: ``headers["content-type"]``; a missing header is None
    headers: Message
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    @property
    def json(self) -> Any:
        """The body parsed as JSON. Raises ValueError when it is not JSON."""
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timed out) leaves a broken pipe behind: expected here.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = ReceivedRequest(self.command, self.path, self.headers, body)
        reply = self.server.receiver._record(request)
        if reply.delay and self.server.receiver._closing.wait(reply.delay):
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json" if reply.body else "text/plain")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_POST = do_PUT = do_GET = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 (a free port) in a background thread.

    ``replies``: answers in order (status codes or ``Reply``); ``default``: the answer
    after they run out; ``delay``: seconds every default answer waits (a hanging server).
    """

    def __init__(
        self,
        replies: Iterable[int | Reply] = (),
        default: int | Reply = 200,
        delay: float = 0.0,
    ) -> None:
        self._replies = [_as_reply(r) for r in replies]
        default_reply = _as_reply(default)
        if delay:
            default_reply = replace(default_reply, delay=delay)
        self._default = default_reply
        self._requests: list[ReceivedRequest] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebhookReceiver:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="webhook", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT`` + ``path`` (which may carry a query string)."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def script(self, *replies: int | Reply) -> None:
        """Replace the answers still to come with ``replies``."""
        with self._changed:
            self._replies = [_as_reply(r) for r in replies]

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._changed:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Return the requests once at least ``count`` have arrived.

        Raises AssertionError after ``timeout`` seconds, listing what did arrive.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                seen = [f"{r.method} {r.target}" for r in self._requests]
                raise AssertionError(f"expected {count} request(s) within {timeout}s, got {seen}")
            return list(self._requests)

    def _record(self, request: ReceivedRequest) -> Reply:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()
            return self._replies.pop(0) if self._replies else self._default


def _as_reply(reply: int | Reply) -> Reply:
    return reply if isinstance(reply, Reply) else Reply(reply)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A started ``WebhookReceiver`` answering 200 (``webhook.script(...)`` to change)."""
    with WebhookReceiver() as receiver:
        yield receiver
