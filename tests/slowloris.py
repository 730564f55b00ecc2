"""Slow clients, for tests/test_slow_clients.py and bench/slow_clients.py: connections that send
half a request and stall, uploads that send their body a few bytes at a time, and a timed
``/healthz`` probe. Raw sockets on 127.0.0.1, so each client does exactly what it says."""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any

import httpx

# A request line and part of the headers, never the blank line that ends them.
HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow-cl"
BOUNDARY = "slowloris-boundary"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def dropped_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed or answered this connection (it is done with it), without
    waiting."""
    readable, _, _ = select.select([sock], [], [], 0)  # an answer, the end, or a reset
    return bool(readable)


class HalfOpen:
    """``count`` connections that each sent half a request and wait; ``top_up`` replaces those
    the server dropped with new ones, as a slowloris attacker does."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.sockets = [self._open() for _ in range(count)]
        self.replaced = 0

    def _open(self) -> socket.socket:
        sock = connect(self.port)
        sock.sendall(HALF_REQUEST)
        return sock

    def wait_for_a_close(self, at_most: float) -> None:
        """Return when the server drops one of them, or after ``at_most`` seconds."""
        select.select(self.sockets, [], [], at_most)

    def top_up(self) -> int:
        """Replace every connection the server has dropped; how many were replaced."""
        replaced = 0
        for n, sock in enumerate(self.sockets):
            if dropped_by_server(sock):
                sock.close()
                self.sockets[n] = self._open()
                replaced += 1
        self.replaced += replaced
        return replaced

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def multipart(image: bytes) -> bytes:
    """A multipart/form-data body with ``image`` as the field ``image``."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + image + f"\r\n--{BOUNDARY}--\r\n".encode()


class SlowUpload:
    """``POST /api/search/image`` whose body arrives ``step`` bytes per ``trickle`` call."""

    def __init__(self, port: int, image: bytes, first: int = 1024, step: int = 16) -> None:
        self.body = multipart(image)
        self.sent = 0
        self.step = step
        self.sock = connect(port)
        head = (
            "POST /api/search/image?k=3 HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self.sock.sendall(head)
        self._send(first)

    def _send(self, n: int) -> None:
        chunk = self.body[self.sent : self.sent + n]
        self.sock.sendall(chunk)
        self.sent += len(chunk)

    def trickle(self) -> None:
        """Send the next few bytes, never the last one."""
        self._send(min(self.step, len(self.body) - self.sent - 1))

    def finish(self, timeout: float = 60) -> tuple[int, Any]:
        """Send the rest; the response's status and JSON body."""
        self._send(len(self.body) - self.sent)
        return self.response(timeout)

    def response(self, timeout: float) -> tuple[int, Any]:
        """Wait up to ``timeout`` seconds for the response (the server closes afterwards)."""
        self.sock.settimeout(timeout)
        data = b""
        while chunk := self.sock.recv(65536):
            data += chunk
        self.sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head:
            return 0, None  # closed without an answer
        status = int(head.split(b" ", 2)[1])
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def close(self) -> None:
        self.sock.close()


def probe(base: str, timeout: float) -> float:
    """Seconds ``GET /healthz`` took to answer 200 on a new connection; ``inf`` if it did not
    within ``timeout``."""
    started = time.perf_counter()
    try:
        response = httpx.get(f"{base}/healthz", timeout=timeout)
    except httpx.HTTPError:
        return float("inf")
    return time.perf_counter() - started if response.status_code == 200 else float("inf")
