"""The HTTP(S) server: a ``ThreadingHTTPServer`` on a loopback port, in this process.

TLS handshakes happen in the connection's own thread, so a client that fails one (no
client certificate under mutual TLS, an untrusted CA) cannot stall the server.

Every request line is held to ``http.max_initial_line_length`` (4,096 bytes, CR LF not
counted, as Netty's ``HttpObjectDecoder`` counts): a longer one is answered 400
``too_long_http_line_exception`` over HTTP/1.0 and the connection is closed, whatever
the method and path. Answers can be dropped (the connection closes with nothing
written) or delayed after the request was processed (``FakeControls.drop_answer`` /
``delay_answer``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from .app import MAX_INITIAL_LINE, App, RawResponse, Security
from .faults import FakeControls
from .node import Node

HANDSHAKE_TIMEOUT = 10.0
MAX_LINE_READ = 65537  # what BaseHTTPRequestHandler reads of a line at most
DISCARD_LIMIT = 1 << 20  # bytes of headers and body read and dropped after a refused line


@dataclass(frozen=True)
class TlsConfig:
    """Serve HTTPS with ``certfile``/``keyfile``; with ``client_ca``, require client
    certificates signed by it (mutual TLS)."""

    certfile: Path
    keyfile: Path
    client_ca: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)
        return context


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_one_request(self) -> None:
        """``BaseHTTPRequestHandler.handle_one_request``, with Netty's line limit first."""
        try:
            line = self.rfile.readline(MAX_LINE_READ)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not line:
            self.close_connection = True
            return
        if len(line.rstrip(b"\r\n")) > MAX_INITIAL_LINE:
            self._refuse_long_line(line)
            return
        self.raw_requestline = line
        if not self.parse_request():
            return
        handler = getattr(self, f"do_{self.command}", None)
        if handler is None:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        handler()
        self.wfile.flush()

    def _refuse_long_line(self, line: bytes) -> None:
        """Answer the too long line, after reading (and dropping) what the client sends
        with it, so that it reads the answer rather than a reset connection."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.settimeout(2.0)
            while not line.endswith(b"\n"):
                line = self.rfile.readline(MAX_LINE_READ)
                if not line:
                    break
            length, read = 0, 0
            while read < DISCARD_LIMIT:
                header = self.rfile.readline(MAX_LINE_READ)
                read += len(header)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length" and value.strip().isdigit():
                    length = int(value.strip())
            if 0 < length <= DISCARD_LIMIT:
                self.rfile.read(length)
        response = self.server.app.too_long_line(line.decode("latin-1").strip())
        self.request_version = "HTTP/1.0"  # no request was parsed: Netty's placeholder
        self._write(response, protocol="HTTP/1.0")

    def _write(self, response: RawResponse, protocol: str | None = None) -> None:
        if response.drop:
            self.close_connection = True
            return
        if response.delay:
            time.sleep(response.delay)
        if response.close:
            self.close_connection = True
        try:
            if protocol is None:
                self.send_response(response.status)
            else:
                reason = self.responses.get(response.status, ("",))[0]
                self.wfile.write(f"{protocol} {response.status} {reason}\r\n".encode("latin-1"))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if response.body:
                self.wfile.write(response.body)
        except OSError:  # the client gave up (its own timeout) before the answer came
            self.close_connection = True

    def _serve(self) -> None:
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.server.app.handle(self.command, self.path, headers, body)
        self._write(response)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, tls: ssl.SSLContext | None):
        self.app = app
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
            request.settimeout(None)
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)
            if self.tls is not None:
                request.close()

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class FakeElasticsearch:
    """An in-process Elasticsearch 8 test double on ``127.0.0.1`` and a free port.

    ``path_repo``: roots fs repositories must live under (``path.repo``).
    ``users`` / ``api_keys``: turn security on (basic auth, API keys ``id -> secret``).
    ``tls``: serve HTTPS (and require client certificates when it has ``client_ca``).
    ``data_nodes``: how many nodes replicas can use (1: a default index is yellow).
    ``controls`` (also :attr:`node`'s): fault injection, timing knobs, request log.
    """

    def __init__(
        self,
        *,
        path_repo: Sequence[Path | str] = (),
        cluster_name: str = "backupctl-test",
        node_name: str = "fake-es-node-1",
        data_nodes: int = 1,
        users: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        tls: TlsConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        compatible_versions: Iterable[int] = (7, 8, 9),
    ) -> None:
        self.node = Node(
            cluster_name=cluster_name,
            node_name=node_name,
            path_repo=path_repo,
            data_nodes=data_nodes,
        )
        self.app = App(
            self.node, Security(dict(users or {}), dict(api_keys or {})), compatible_versions
        )
        self.tls = tls
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def controls(self) -> FakeControls:
        return self.node.controls

    @property
    def bugs(self) -> list[str]:
        """Tracebacks of requests the double itself failed on (answered 500)."""
        return list(self.node.bugs)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Elasticsearch is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self._address[0]}:{self.port}"

    def start(self) -> FakeElasticsearch:
        context = self.tls.context() if self.tls is not None else None
        self._server = _Server(self._address, self.app, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-es-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeElasticsearch:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
