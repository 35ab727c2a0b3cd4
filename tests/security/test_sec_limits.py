"""The HTTP parser's bounds (issue #13): a header line that never ends is not buffered (it was, to 64 MiB a
connection, with uvicorn's default httptools parser), a client that never finishes its headers is dropped
(slowloris), and an idle kept-alive connection is closed. Raw sockets against a real server process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tests.reliability.relsupport import record_figures, rss_kb, start_server
from tests.security.edgesupport import http

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("limits") / "data", "--no-render",
                           "--header-timeout", str(HEADER_TIMEOUT))  # fmt: skip
    yield running
    running.stop()


def flood_one_header(port: int, megabytes: int, hold: float = 3.0) -> tuple[int, bytes]:
    """Send a request whose one header line never ends, then wait up to `hold` seconds for the server to answer
    or close; (bytes sent before the server closed, its reply)."""
    sent = 0
    chunk = b"a" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        try:
            while sent < megabytes << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # reset or broken pipe: the server closed on us
            pass
        reply = b""
        sock.settimeout(hold)
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except OSError:
            pass
    return sent, reply


def test_a_header_line_that_never_ends_is_not_buffered(server):
    """8 clients each send a 4 MiB header line and hold on: the server answers 400 and closes each, and its
    memory does not move while they try (uvicorn's default parser, httptools, grew by ~32 MB holding them)."""
    pid = server.process.pid
    assert http(server.port, "GET", "/api/health").status == 200
    before = rss_kb(pid)
    results: list[tuple[int, bytes]] = []
    flooders = [threading.Thread(target=lambda: results.append(flood_one_header(server.port, 4))) for _ in range(8)]
    for thread in flooders:
        thread.start()
    peak = before
    while any(thread.is_alive() for thread in flooders):
        peak = max(peak, rss_kb(pid))
        time.sleep(0.05)
    assert len(results) == 8
    for _, reply in results:
        assert reply.startswith(b"HTTP/1.1 400"), reply[:200]  # refused and closed
    grown_mb = (peak - before) / 1024
    assert grown_mb < 8, f"server RSS grew {grown_mb:.1f} MB while 8 clients sent 4 MiB header lines"
    assert http(server.port, "GET", "/api/health").status == 200  # and it still serves
    big_ok = http(server.port, "GET", "/api/health", X_Big="b" * 32_000)  # a large but bounded header is fine
    assert big_ok.status == 200
    record_figures("http_header_flood", {"clients": 8, "attempted_mib": 4, "peak_rss_growth_mb": round(grown_mb, 2)})


def trickle(port: int, every: float, stop_after: float) -> tuple[float, bytes]:
    """Send a request's headers one byte every `every` seconds; when the server closes: (seconds, what it said)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=stop_after) as sock:
        sock.settimeout(every)
        payload = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"s" * 10_000
        reply = b""
        for byte in payload:
            if time.monotonic() - started > stop_after:
                break
            try:
                sock.send(bytes([byte]))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            except TimeoutError:
                continue
            except OSError:
                break
    return time.monotonic() - started, reply


def silent(port: int, stop_after: float) -> float:
    """Connect and send nothing: seconds until the server closes."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=stop_after) as sock, contextlib.suppress(OSError):
        sock.recv(4096)
    return time.monotonic() - started


def idle_after_one_request(port: int, stop_after: float) -> float:
    """One request on a kept-alive connection, then nothing: seconds from its answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=stop_after) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            data += sock.recv(4096)
        started = time.monotonic()
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
    return time.monotonic() - started


def test_slow_headers_and_idle_connections_are_dropped(server):
    results: dict[str, object] = {}
    jobs = {
        "trickle": lambda: trickle(server.port, 0.1, 15),
        "silent": lambda: silent(server.port, 15),
        "idle": lambda: idle_after_one_request(server.port, 15),
    }
    threads = [threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, f())) for k, f in jobs.items()]
    for thread in threads:
        thread.start()
    # Meanwhile a client that sends its headers slowly but within the deadline is served.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for part in (b"GET /api/health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"Connection: close\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(HEADER_TIMEOUT / 8)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    for thread in threads:
        thread.join(30)
    trickled, reply = results["trickle"]
    assert HEADER_TIMEOUT * 0.8 < trickled < HEADER_TIMEOUT + 3, trickled
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert HEADER_TIMEOUT * 0.8 < results["silent"] < HEADER_TIMEOUT + 3, results["silent"]
    assert 4 < results["idle"] < 5 + 3, results["idle"]  # --keep-alive: uvicorn's timeout_keep_alive, 5 s
    assert http(server.port, "GET", "/api/health").status == 200
    record_figures("http_slow_clients", {"header_timeout_s": HEADER_TIMEOUT, "trickle_dropped_after_s":
                                         round(trickled, 2), "silent_dropped_after_s": round(results["silent"], 2),
                                         "idle_keepalive_closed_after_s": round(results["idle"], 2)})  # fmt: skip
