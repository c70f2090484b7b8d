"""Loopback networking helpers shared by the test servers and the benchmarks."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
