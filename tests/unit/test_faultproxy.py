"""The fault-injecting proxy itself, in front of a tiny recording HTTP server."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy, FaultRates, Request

BODY = bytes(range(256)) * 400  # 100 KiB: several relay chunks


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[tuple[str, str, bytes]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the proxy hanging up after a reset is expected


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, body))
        reply = b"" if self.command in ("HEAD", "DELETE") else BODY
        self.send_response(204 if self.command == "DELETE" else 200)
        self.send_header("Content-Length", str(len(BODY) if self.command == "HEAD" else len(reply)))
        self.send_header("ETag", '"abc"')
        self.end_headers()
        self.wfile.write(reply)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _Upstream) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def _request(proxy: FaultProxy, method: str, path: str, body: bytes | None = None) -> Any:
    host, port = proxy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_without_faults_requests_pass_through_unchanged(upstream: _Upstream) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        assert _request(proxy, "GET", "/bucket/key")[2] == BODY
        status, _, body = _request(proxy, "PUT", "/bucket/key?partNumber=1&uploadId=x", b"data")
        assert (status, body) == (200, BODY)
        status, headers, body = _request(proxy, "HEAD", "/bucket/key")
        assert (status, headers["Content-Length"], body) == (200, str(len(BODY)), b"")
    assert [(m, p, b) for m, p, b in upstream.seen] == [
        ("GET", "/bucket/key", b""),
        ("PUT", "/bucket/key?partNumber=1&uploadId=x", b"data"),
        ("HEAD", "/bucket/key", b""),
    ]
    assert (proxy.requests, proxy.forwarded, sum(proxy.injected.values())) == (3, 3, 0)
    assert proxy.requests_by_operation == {"GetObject": 1, "UploadPart": 1, "HeadObject": 1}


@pytest.mark.parametrize(
    ("fault", "statuses", "code"),
    [
        ("500", {500}, "InternalError"),
        ("503", {503}, "ServiceUnavailable"),
        ("slowdown", {429, 503}, "SlowDown"),
    ],
)
def test_error_faults_answer_like_s3_and_never_reach_the_server(
    upstream: _Upstream, fault: str, statuses: set[int], code: str
) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        proxy.persistent(fault)
        answers = [_request(proxy, "PUT", f"/bucket/k{i}", b"payload") for i in range(4)]
    assert {status for status, _, _ in answers} == statuses
    for _status, headers, body in answers:
        assert headers["Content-Type"] == "application/xml"
        assert f"<Code>{code}</Code>" in body.decode()
        assert "<RequestId>" in body.decode()
    assert upstream.seen == []
    assert proxy.injected == {fault: 4}
    assert proxy.by_operation == {(fault, "PutObject"): 4}


def test_reset_before_forwarding_never_reaches_the_server(upstream: _Upstream) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        proxy.persistent("reset-request")
        for method, body in (("GET", None), ("PUT", b"x" * 200_000)):
            with pytest.raises((ConnectionError, http.client.HTTPException)):
                _request(proxy, method, "/bucket/key", body)
    assert upstream.seen == []
    assert proxy.injected == {"reset-request": 2}


def test_reset_mid_response_happens_after_the_server_acted(upstream: _Upstream) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        proxy.persistent("reset-response")
        # the RST may overtake the half body the client had not read yet
        with pytest.raises((http.client.IncompleteRead, ConnectionResetError)) as excinfo:
            _request(proxy, "GET", "/bucket/big")
        if isinstance(excinfo.value, http.client.IncompleteRead):
            assert len(excinfo.value.partial) < len(BODY)
            assert excinfo.value.partial == BODY[: len(excinfo.value.partial)]
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            _request(proxy, "DELETE", "/bucket/big")  # empty body: cut in the status line
    assert [(m, p) for m, p, _ in upstream.seen] == [
        ("GET", "/bucket/big"),
        ("DELETE", "/bucket/big"),
    ]
    assert proxy.forwarded == 2


def test_expect_continue_gets_the_error_before_the_body_is_sent(upstream: _Upstream) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        proxy.persistent("503")
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            answer = sock.makefile("rb").read()  # the proxy closes after answering
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b"Connection: close" in answer and b"<Code>ServiceUnavailable</Code>" in answer
    assert upstream.seen == []


def test_expect_continue_passes_when_no_fault_is_drawn(upstream: _Upstream) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.putrequest("PUT", "/bucket/key")
        conn.putheader("Content-Length", "3")
        conn.putheader("Expect", "100-continue")
        conn.endheaders(b"abc")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == BODY
        conn.close()
    assert upstream.seen == [("PUT", "/bucket/key", b"abc")]


def test_rates_are_honoured_and_a_seed_replays_the_same_faults(upstream: _Upstream) -> None:
    def run(seed: int) -> list[str | None]:
        proxy = FaultProxy(_url(upstream), FaultRates.spread(0.5, delay=0.1), seed=seed)
        return [proxy.decide(Request("GET", "/b/k", {})) for _ in range(2000)]

    first, again, other = run(7), run(7), run(8)
    assert first == again and first != other
    failing = [f for f in first if f not in (None, "delay")]
    assert 0.45 < len(failing) / len(first) < 0.55
    for kind in ("500", "503", "slowdown", "reset-request", "reset-response"):
        assert 0.07 < first.count(kind) / len(first) < 0.13, kind
    assert 0.07 < first.count("delay") / len(first) < 0.13


def test_delay_slows_the_answer_but_it_arrives(upstream: _Upstream) -> None:
    with FaultProxy(_url(upstream), FaultRates(delay=1.0, delay_seconds=0.3)) as proxy:
        started = time.monotonic()
        assert _request(proxy, "GET", "/bucket/key")[2] == BODY
        assert time.monotonic() - started >= 0.3
    assert proxy.injected == {"delay": 1} and proxy.failures_injected == 0


def test_persist_when_switches_at_the_matching_request_and_transient_ends_it(
    upstream: _Upstream,
) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        proxy.persist_when(lambda r: r.operation == "UploadPart" and r.query["partNumber"] == ["2"])
        assert _request(proxy, "PUT", "/b/k?partNumber=1&uploadId=u", b"1")[0] == 200
        assert _request(proxy, "PUT", "/b/k?partNumber=2&uploadId=u", b"2")[0] == 503
        assert _request(proxy, "GET", "/b/k")[0] == 503  # everything fails from then on
        assert proxy.is_persistent
        proxy.transient()
        assert _request(proxy, "GET", "/b/k")[0] == 200
    assert proxy.injected == {"503": 2}
    assert [p for _, p, _ in upstream.seen] == ["/b/k?partNumber=1&uploadId=u", "/b/k"]


def test_inject_fails_only_the_next_matching_requests(upstream: _Upstream) -> None:
    with FaultProxy(_url(upstream)) as proxy:
        proxy.inject(lambda r: r.operation == "CompleteMultipartUpload", "500", times=2)
        assert _request(proxy, "PUT", "/b/k?partNumber=1&uploadId=u", b"1")[0] == 200
        statuses = [_request(proxy, "POST", "/b/k?uploadId=u", b"<x/>")[0] for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert proxy.by_operation == {("500", "CompleteMultipartUpload"): 2}
    assert len(upstream.seen) == 2


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="add up to"):
        FaultRates(internal_error=0.7, unavailable=0.7)
    with pytest.raises(ValueError, match="upstream"):
        FaultProxy("https://example.com")
    with pytest.raises(ValueError, match="persistent fault"):
        FaultProxy("http://127.0.0.1:9").persistent("delay")


@pytest.mark.parametrize(
    ("method", "path", "query", "operation"),
    [
        ("POST", "/b/k", {"uploads": [""]}, "CreateMultipartUpload"),
        ("PUT", "/b/k", {"partNumber": ["1"], "uploadId": ["u"]}, "UploadPart"),
        ("POST", "/b/k", {"uploadId": ["u"]}, "CompleteMultipartUpload"),
        ("DELETE", "/b/k", {"uploadId": ["u"]}, "AbortMultipartUpload"),
        ("GET", "/b", {"uploads": [""]}, "ListMultipartUploads"),
        ("POST", "/b", {"delete": [""]}, "DeleteObjects"),
        ("GET", "/b", {"list-type": ["2"]}, "ListObjects"),
        ("HEAD", "/b", {}, "HeadBucket"),
        ("GET", "/b/a/b/c", {}, "GetObject"),
    ],
)
def test_requests_are_named_by_s3_operation(
    method: str, path: str, query: dict[str, list[str]], operation: str
) -> None:
    assert Request(method, path, query).operation == operation
