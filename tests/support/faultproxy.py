"""A fault-injecting HTTP reverse proxy for tests: put it between boto3 and moto's S3 server.

Every request draws one number from a seeded RNG and, by the configured rates, is either
forwarded untouched or gets one fault:

- ``500``: ``500 InternalError`` with S3's XML error body (the request never arrives);
- ``503``: ``503 ServiceUnavailable``;
- ``slowdown``: throttling, ``503 SlowDown`` or ``429 SlowDown`` (alternately);
- ``reset-request``: the connection is reset (TCP RST) before the request is forwarded,
  after reading part of its body when it has one;
- ``reset-response``: the request IS forwarded and carried out, then the connection is
  reset part-way through the response (half the body, or half the status line when the
  body is empty): the client cannot tell whether its request took effect;
- ``delay``: a slow answer, forwarded after ``delay_seconds``.

``persistent(fault)`` makes every request fail with one fault until ``transient()``;
``persist_when(predicate, fault)`` arms that switch for the first request the predicate
accepts (e.g. the second part of a multipart upload), so an operation can be caught in
the middle; ``inject(predicate, fault, times)`` gives just the next matching requests a
fault. ``injected`` counts faults by kind, ``by_operation`` by kind and S3
operation, ``forwarded`` the requests that reached the server.

Use it as a context manager: ``with FaultProxy(upstream, FaultRates.spread(0.15), seed=7)
as proxy: ... proxy.url ...``.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULTS = ("500", "503", "slowdown", "reset-request", "reset-response", "delay")
#: faults that answer with an S3 error: kind -> (status, code, message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FaultRates:
    """Probability per request of each fault (their sum must stay at most 1)."""

    internal_error: float = 0.0
    unavailable: float = 0.0
    slow_down: float = 0.0
    reset_request: float = 0.0
    reset_response: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.total <= 1.0:
            raise ValueError(f"fault rates add up to {self.total}, not within 0..1")

    @classmethod
    def spread(cls, failures: float, delay: float = 0.0, delay_seconds: float = 0.3) -> FaultRates:
        """``failures`` split evenly over the five failing faults, plus ``delay``."""
        each = failures / 5
        return cls(each, each, each, each, each, delay, delay_seconds)

    @property
    def total(self) -> float:
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "delay_seconds")

    def table(self) -> list[tuple[str, float]]:
        """(fault kind, rate) in FAULTS order."""
        rates = [getattr(self, f.name) for f in fields(self) if f.name != "delay_seconds"]
        return list(zip(FAULTS, rates, strict=True))


@dataclass(frozen=True)
class Request:
    """What the proxy knows of a request when it decides its fate."""

    method: str
    path: str
    query: dict[str, list[str]]

    @property
    def operation(self) -> str:
        """The S3 operation, guessed from method and query (e.g. ``UploadPart``)."""
        q, m = self.query, self.method
        if "uploadId" in q:
            return {
                "PUT": "UploadPart",
                "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload",
            }.get(m, "ListParts")
        if "uploads" in q:
            return "CreateMultipartUpload" if m == "POST" else "ListMultipartUploads"
        if "delete" in q:
            return "DeleteObjects"
        key = self.path.lstrip("/").partition("/")[2]
        if not key:
            return {"GET": "ListObjects", "HEAD": "HeadBucket"}.get(m, f"{m} bucket")
        return {
            "GET": "GetObject",
            "PUT": "PutObject",
            "HEAD": "HeadObject",
            "DELETE": "DeleteObject",
        }.get(m, f"{m} object")


Predicate = Callable[[Request], bool]


class FaultProxy:
    """A threaded reverse proxy to ``upstream`` (``http://host:port``) injecting faults."""

    def __init__(self, upstream: str, rates: FaultRates | None = None, seed: int = 0):
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.rates = rates or FaultRates()
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._persistent: str | None = None
        self._trigger: tuple[Predicate, str] | None = None
        self._targeted: list[list[Any]] = []  # [predicate, fault, times left]
        self._throttle_flip = False
        self.requests = 0
        self.forwarded = 0
        self.injected: Counter[str] = Counter()
        self.by_operation: Counter[tuple[str, str]] = Counter()
        self.requests_by_operation: Counter[str] = Counter()
        #: (fault, operation, path) of every fault injected, in order
        self.history: list[tuple[str, str, str]] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="faultproxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- modes ---------------------------------------------------------------------------

    def set_rates(self, rates: FaultRates) -> None:
        with self._lock:
            self.rates = rates

    def persistent(self, fault: str = "503") -> None:
        """Fail every request with ``fault`` from now on, until ``transient()``."""
        _check_fault(fault)
        with self._lock:
            self._persistent, self._trigger = fault, None

    def persist_when(self, predicate: Predicate, fault: str = "503") -> None:
        """Switch to ``persistent(fault)`` at the first request ``predicate`` accepts
        (that request fails too)."""
        _check_fault(fault)
        with self._lock:
            self._trigger = (predicate, fault)

    def inject(self, predicate: Predicate, fault: str, times: int = 1) -> None:
        """Give the next ``times`` requests that ``predicate`` accepts ``fault`` (whatever
        the rates say): e.g. lose the answer of the one CompleteMultipartUpload."""
        _check_fault(fault)
        with self._lock:
            self._targeted.append([predicate, fault, times])

    def transient(self) -> None:
        """Back to faults at the configured rates (and disarm ``persist_when``)."""
        with self._lock:
            self._persistent, self._trigger = None, None

    @property
    def is_persistent(self) -> bool:
        return self._persistent is not None

    @contextmanager
    def failing(self, fault: str = "503") -> Iterator[FaultProxy]:
        """``persistent(fault)`` for the duration of a ``with`` block."""
        self.persistent(fault)
        try:
            yield self
        finally:
            self.transient()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = self.forwarded = 0
            self.injected.clear()
            self.by_operation.clear()
            self.requests_by_operation.clear()
            self.history.clear()

    @property
    def failures_injected(self) -> int:
        """Faults that made a request fail (every kind but ``delay``)."""
        return sum(n for kind, n in self.injected.items() if kind != "delay")

    # --- used by the handler -------------------------------------------------------------

    def decide(self, request: Request) -> str | None:
        """Return the fault for ``request`` (None: forward it untouched), and count it."""
        with self._lock:
            self.requests += 1
            self.requests_by_operation[request.operation] += 1
            if self._trigger is not None and self._trigger[0](request):
                self._persistent, self._trigger = self._trigger[1], None
            fault = self._persistent or self._take_targeted(request) or self._draw()
            if fault is not None:
                self.injected[fault] += 1
                self.by_operation[(fault, request.operation)] += 1
                self.history.append((fault, request.operation, request.path))
            return fault

    def _take_targeted(self, request: Request) -> str | None:
        for target in self._targeted:
            if target[2] > 0 and target[0](request):
                target[2] -= 1
                return str(target[1])
        return None

    def _draw(self) -> str | None:
        roll = self._rng.random()
        for kind, rate in self.rates.table():
            if roll < rate:
                return kind
            roll -= rate
        return None

    def throttle_status(self) -> int:
        """429 and 503 by turns: S3 throttles with 503 SlowDown, S3-compatibles often 429."""
        with self._lock:
            self._throttle_flip = not self._throttle_flip
            return 429 if self._throttle_flip else 503

    def count_forwarded(self) -> None:
        with self._lock:
            self.forwarded += 1


def _check_fault(fault: str) -> None:
    if fault not in FAULTS or fault == "delay":
        raise ValueError(f"persistent fault must be one of {FAULTS[:-1]}, got {fault!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and clients hanging up are the point here, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _fault: str | None
    _decided: bool

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self) -> bool:
        self._decided, self._fault = False, None
        return super().parse_request()

    def _request(self) -> Request:
        parts = urlsplit(self.path)
        return Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True))

    def _decide(self) -> str | None:
        if not self._decided:
            self._fault = self.server.proxy.decide(self._request())
            self._decided = True
        return self._fault

    def handle_expect_100(self) -> bool:
        """Decide before the body is sent, as S3 does: an error answer saves the upload."""
        fault = self._decide()
        if fault in ERRORS:
            self._error(fault, body_unread=True)
            return False
        if fault == "reset-request":
            self._reset()
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        fault = self._decide()
        if fault == "reset-request":
            self._read_body(partial=True)
            self._reset()
            return
        body = self._read_body()
        if fault in ERRORS:
            self._error(fault)
            return
        if fault == "delay":
            time.sleep(self.server.proxy.rates.delay_seconds)
        self._forward(body, reset=fault == "reset-response")

    def _read_body(self, partial: bool = False) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"" if partial else self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if partial:
            length //= 2
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _error(self, fault: str, body_unread: bool = False) -> None:
        status, code, message = ERRORS[fault]
        if fault == "slowdown":
            status = self.server.proxy.throttle_status()
        request_id = uuid.uuid4().hex[:16].upper()
        resource = urlsplit(self.path).path
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        body = b"" if self.command == "HEAD" else xml
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", request_id)
        if fault == "slowdown":
            self.send_header("Retry-After", "1")
        if body_unread:  # the client never sent its body: do not read it as the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _forward(self, body: bytes, reset: bool) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            self.server.proxy.count_forwarded()
            self._relay(response, reset)
        finally:
            conn.close()

    def _relay(self, response: http.client.HTTPResponse, reset: bool) -> None:
        head = self.command == "HEAD"
        pairs = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        length = response.length
        if head:
            body_iter: Iterator[bytes] = iter(())
        elif length is None:  # chunked or until-close upstream: buffer it, send a length
            data = response.read()
            length = len(data)
            pairs = [(k, v) for k, v in pairs if k.lower() != "content-length"]
            pairs.append(("Content-Length", str(length)))
            body_iter = iter([data])
        else:
            body_iter = iter(lambda: response.read(_CHUNK), b"")
        status_line = f"{self.protocol_version} {response.status} {response.reason}\r\n".encode()
        header_block = status_line + b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n"
        if reset and (head or not length):
            self.wfile.write(header_block[: len(status_line) // 2])
            self._reset()
            return
        self.wfile.write(header_block)
        budget = (length or 0) // 2 if reset else -1
        for chunk in body_iter:
            if budget >= 0 and len(chunk) >= budget:
                self.wfile.write(chunk[:budget])
                self._reset()
                return
            self.wfile.write(chunk)
            budget -= len(chunk) if budget >= 0 else 0
