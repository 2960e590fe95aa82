"""A small HTTP/1.1 load generator for the benchmarks: one thread, non-blocking
keep-alive sockets, requests written in advance as bytes.

The Python `http.client` in threads costs about 380 us of CPU a request, on the
same 2 cores as the server it measures; this costs about a tenth of that, so
the figure is the server's, not the client's. Two modes:

- closed loop (`closed`): `connections` sockets, each sends its next request
  when the answer to the last one is in: the server's maximum throughput;
- open loop (`paced`): requests are due at a fixed rate whatever the server
  does; a request waits for a free socket if all are busy, and its latency
  counts from the moment it was due, so a slow server cannot hide its queue
  (no coordinated omission).

Only what these benchmarks send is supported: answers with Content-Length,
no chunked bodies, no redirects.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field


def post(path: str, body: bytes, host: str, content_type: str = "application/json") -> bytes:
    """One request, as bytes on the wire."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


@dataclass
class Outcome:
    """What one run saw: each answer's latency (seconds), status and whether its body held `marker`."""

    latencies: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)  # from the actual send, not the due moment
    statuses: dict[int, int] = field(default_factory=dict)
    marked: int = 0
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0
    elapsed: float = 0.0


class _Conn:
    def __init__(self, address: tuple[str, int]):
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = bytearray()
        self.outgoing = b""
        self.due = self.sent = 0.0
        self.busy = False

    def close(self) -> None:
        self.sock.close()


def _answer(buffer: bytearray) -> tuple[int, bytes, int, bool] | None:
    """(status, body, bytes used, whether the server closes) once a whole answer is in `buffer`."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    length, closes = 0, False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            closes = value.strip().lower() == "close"
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return int(head[0].split(" ", 2)[1]), bytes(buffer[end + 4:total]), total, closes


class LoadGenerator:
    """Sends `requests` (bytes, used round-robin from `start`) to host:port."""

    def __init__(self, host: str, port: int, requests: list[bytes], marker: bytes = b""):
        self.address = (host, port)
        self.requests = requests
        self.marker = marker

    def _run(self, connections: int, due: deque | None, total: int, start: int) -> Outcome:
        outcome = Outcome()
        selector = selectors.DefaultSelector()
        conns = self._open(connections)
        idle = deque(conns)
        for conn in conns:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        sent = done = 0
        t0 = time.perf_counter()
        try:
            while done < total:
                now = time.perf_counter()
                # Start every request that is due (closed loop: whenever a socket is free).
                while idle and sent < total and (due is None or due[0] <= now):
                    conn = idle.popleft()
                    conn.due = due.popleft() if due is not None else now
                    conn.sent = now
                    conn.busy = True
                    conn.outgoing = self.requests[(start + sent) % len(self.requests)]
                    sent += 1
                    try:
                        written = conn.sock.send(conn.outgoing)
                    except BlockingIOError:
                        written = 0
                    conn.outgoing = conn.outgoing[written:]
                    if conn.outgoing:
                        selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
                timeout = None
                if due is not None and sent < total:
                    timeout = max(0.0, due[0] - time.perf_counter()) if idle else None
                for key, events in selector.select(timeout):
                    conn = key.data
                    if events & selectors.EVENT_WRITE and conn.outgoing:
                        written = conn.sock.send(conn.outgoing)
                        conn.outgoing = conn.outgoing[written:]
                        if not conn.outgoing:
                            selector.modify(conn.sock, selectors.EVENT_READ, conn)
                    if not events & selectors.EVENT_READ:
                        continue
                    try:
                        chunk = conn.sock.recv(262144)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        chunk, reason = b"", type(exc).__name__
                    else:
                        reason = "connection closed by the server"
                    if not chunk:
                        outcome.errors.append(reason)
                        selector.unregister(conn.sock)
                        conn.close()
                        if conn.busy:
                            done += 1
                        fresh = _Conn(self.address)
                        selector.register(fresh.sock, selectors.EVENT_READ, fresh)
                        idle.append(fresh)
                        continue
                    conn.buffer += chunk
                    answer = _answer(conn.buffer)
                    if answer is None:
                        continue
                    status, body, used, closes = answer
                    del conn.buffer[:used]
                    finished = time.perf_counter()
                    outcome.latencies.append(finished - conn.due)
                    outcome.service.append(finished - conn.sent)
                    outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
                    if self.marker and self.marker in body:
                        outcome.marked += 1
                    if status != 200:
                        outcome.errors.append(f"HTTP {status}")
                    conn.busy = False
                    done += 1
                    if closes:  # a server without keep-alive (gunicorn's sync worker): connect again
                        selector.unregister(conn.sock)
                        conn.close()
                        conn = _Conn(self.address)
                        selector.register(conn.sock, selectors.EVENT_READ, conn)
                        outcome.reconnects += 1
                    idle.append(conn)
        finally:
            outcome.elapsed = time.perf_counter() - t0
            for conn in conns + list(idle):
                try:
                    conn.close()
                except OSError:
                    pass
            selector.close()
        return outcome

    def _open(self, connections: int) -> list[_Conn]:
        """Connections opened one at a time, each answering one request (not
        counted) before the next opens. Opened all at once, they may all be
        accepted by one gunicorn worker and stay with it (keep-alive), leaving
        the other idle; opened this way, the worker busy with the last one is
        slow to accept the next, so they spread as many clients' would."""
        conns = []
        for i in range(connections):
            conn = _Conn(self.address)
            conn.sock.setblocking(True)
            conn.sock.sendall(self.requests[i % len(self.requests)])
            buffer = bytearray()
            while _answer(buffer) is None:
                chunk = conn.sock.recv(262144)
                if not chunk:
                    raise ConnectionError("the server closed the connection while it was being opened")
                buffer += chunk
            conn.sock.setblocking(False)
            conns.append(conn)
        return conns

    def closed(self, total: int, connections: int, start: int = 0) -> Outcome:
        """`total` requests, each socket sending its next as soon as its answer is in."""
        return self._run(connections, None, total, start)

    def paced(self, rate: float, seconds: float, connections: int, start: int = 0) -> Outcome:
        """`rate` requests a second for `seconds`, whatever the server does."""
        total = int(rate * seconds)
        t0 = time.perf_counter() + 0.1
        return self._run(connections, deque(t0 + i / rate for i in range(total)), total, start)
