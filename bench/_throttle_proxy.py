#!/usr/bin/env python3
"""A TCP relay that caps **each connection** at a fixed rate, in each direction.

Put it in front of an S3 server (moto's) to make it behave like a real object store,
where one connection carries a bounded rate and only parallel connections go faster.
It forwards raw bytes and knows nothing of HTTP: a keep-alive connection that carries
several requests is throttled as one connection, as a real store's would be.

Every accepted connection gets its own upstream connection and two threads, one per
direction; each direction has its own token bucket of ``rate`` bytes per second (burst:
one chunk of 64 KiB), so an idle keep-alive connection saves up no more than that.

Run on its own (the benchmark does this, so that the relay has its own interpreter)::

    python bench/_throttle_proxy.py --upstream 127.0.0.1:5000 --rate-mb 40 [--port 0]

It prints ``listening on PORT`` once it accepts connections, logs ``open ID ACTIVE`` and
``close ID UP DOWN SECONDS ACTIVE`` lines (bytes client->upstream, upstream->client) to
stderr, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import signal
import socket
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import TextIO

MIB = 1 << 20
CHUNK = 64 * 1024


class TokenBucket:
    """``rate`` bytes per second with a burst of ``burst`` bytes: ``take(n)`` sleeps
    until ``n`` bytes may pass (a deficit is paid for by sleeping it off)."""

    def __init__(self, rate: float, burst: int = CHUNK) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, n: int) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - n
        self.stamp = now
        if self.tokens < 0:
            time.sleep(-self.tokens / self.rate)


class ThrottleProxy:
    """A threaded TCP relay on 127.0.0.1 to ``upstream`` (host, port), each connection
    capped at ``rate`` bytes/s per direction (0: no cap). A context manager: the
    listening socket closes on exit (the relay threads are daemons)."""

    def __init__(
        self,
        upstream: tuple[str, int],
        rate: float,
        port: int = 0,
        log: TextIO | None = None,
    ) -> None:
        self.upstream = upstream
        self.rate = rate
        self.log = log
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.active = 0
        self.opened = 0
        self._accepting: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThrottleProxy:
        self._accepting = threading.Thread(target=self.serve, name="accept", daemon=True)
        self._accepting.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()

    def serve(self) -> None:
        """Accept connections until the listener is closed."""
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            conn_id = next(self._ids)
            threading.Thread(
                target=self._relay, args=(conn_id, client), name=f"conn-{conn_id}", daemon=True
            ).start()

    def _note(self, line: str) -> None:
        if self.log is not None:
            with self._lock:
                self.log.write(line + "\n")
                self.log.flush()

    def _relay(self, conn_id: int, client: socket.socket) -> None:
        started = time.monotonic()
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.active += 1
            self.opened += 1
            active = self.active
        self._note(f"open {conn_id} {active}")
        counts = [0, 0]
        down = threading.Thread(
            target=self._pump, args=(upstream, client, counts, 1), name=f"down-{conn_id}"
        )
        down.start()
        self._pump(client, upstream, counts, 0)
        down.join()
        for sock in (client, upstream):
            sock.close()
        with self._lock:
            self.active -= 1
            active = self.active
        seconds = time.monotonic() - started
        self._note(f"close {conn_id} {counts[0]} {counts[1]} {seconds:.3f} {active}")

    def _pump(self, src: socket.socket, dst: socket.socket, counts: list[int], slot: int) -> None:
        """Copy ``src`` to ``dst`` at the rate until EOF or an error, then pass the EOF on
        (an error resets both sides, as a broken connection would)."""
        bucket = TokenBucket(self.rate) if self.rate > 0 else None
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            while n := src.recv_into(buf):
                if bucket is not None:
                    bucket.take(n)
                dst.sendall(view[:n])
                counts[slot] += n
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to relay to")
    parser.add_argument(
        "--rate-mb", type=float, default=40.0, help="MiB/s per connection and direction"
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    proxy = ThrottleProxy(
        (host or "127.0.0.1", int(port)), args.rate_mb * MIB, args.port, sys.stderr
    )
    print(f"listening on {proxy.port}", flush=True)
    try:
        proxy.serve()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
