"""Shared by the edge tests: raw HTTP over a socket (any Host, any header, byte by byte), WebSocket upgrades
with a chosen Origin or Host, and reading the server's captured log."""

from __future__ import annotations

import base64
import os
import socket
import time
from dataclasses import dataclass

from tests.server_process import ServerProcess

# The headers every response carries (server/security.py); the values are checked in test_sec_edge.py.
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(port: int, request: bytes, timeout: float = 10) -> Reply:
    """Send `request` as is and read the reply until the server closes or the body is complete."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return Reply(int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0, headers, body)


def http(port: int, method: str, path: str, host: str | None = None, body: bytes = b"", **headers: str) -> Reply:
    """One request over a fresh connection, with exactly these headers (`host` replaces the Host header)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    named.setdefault("Connection", "close")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {f'127.0.0.1:{port}' if host is None else host}"]
    lines += [f"{name}: {value}" for name, value in named.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def upgrade(port: int, path: str, host: str | None = None, **headers: str) -> Reply:
    """A WebSocket upgrade request; status 101 means it was accepted."""
    key = base64.b64encode(os.urandom(16)).decode()
    return http(port, "GET", path, host, Upgrade="websocket", Connection="Upgrade", Sec_WebSocket_Key=key,
                Sec_WebSocket_Version="13", **headers)  # fmt: skip


def log_text(server: ServerProcess, settle: float = 0.3) -> str:
    time.sleep(settle)  # the child writes unbuffered; let its last lines land
    return server.log_path.read_text(errors="replace")
