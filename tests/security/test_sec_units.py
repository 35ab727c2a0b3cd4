"""server/security.py's pieces in process (fast): names and origins, who gets the local session, the creation
bucket, the log filter, and the middleware around a stand-in app."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from server.config import Settings
from server.security import (
    CONTENT_SECURITY_POLICY,
    CreationLimiter,
    EdgeGuard,
    RedactQueries,
    is_loopback,
    local_session_refusal,
    origin_tuple,
    split_host,
)


def test_names_and_origins():
    assert split_host("LocalHost.:8000") == ("localhost", 8000)
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("example.com") == ("example.com", None)
    assert split_host("example.com:x")[1] == -1
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost", "app.localhost", "LOCALHOST."):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "10.0.0.1", "localhost.evil.test", "127.0.0.1.evil.test", "", "::"):
        assert not is_loopback(host), host
    assert origin_tuple("http://Example.com") == ("http", "example.com", 80)
    assert origin_tuple("https://example.com:8443") == ("https", "example.com", 8443)
    for origin in ("null", "file://", "garbage", "ftp://x", "http://x:99999"):
        assert origin_tuple(origin) is None, origin


def scope(host: str = "127.0.0.1:8000", client: str = "127.0.0.1", **headers: str) -> dict[str, Any]:
    raw = [(b"host", host.encode())] + [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "scheme": "http", "method": "GET", "path": "/api/session", "query_string": b"",
            "headers": raw, "client": (client, 5000)}  # fmt: skip


def test_who_gets_the_local_session():
    local = Settings(data_dir=Path("/nonexistent"))
    assert local_session_refusal(scope(), local) is None
    assert local_session_refusal(scope(Origin="http://127.0.0.1:8000"), local) is None
    refused = [
        (scope(client="192.168.1.5"), local),
        (scope(host="evil.test:8000"), local),
        (scope(Origin="http://evil.test"), local),
        (scope(Sec_Fetch_Site="cross-site"), local),
        (scope(X_Forwarded_For="1.2.3.4"), local),
        (scope(), Settings(data_dir=Path("/nonexistent"), local_admin=False)),
        (scope(), Settings(data_dir=Path("/nonexistent"), host="0.0.0.0")),
    ]
    for request, settings in refused:
        assert local_session_refusal(request, settings), request


def test_the_creation_bucket():
    now = [0.0]
    bucket = CreationLimiter(per_minute=10, burst=3, max_clients=2, clock=lambda: now[0])
    assert [bucket.take("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take("10.0.0.1")
    assert wait == pytest.approx(6.0)  # one every 6 s at 10 a minute
    assert bucket.take("10.0.0.2") == 0.0  # another address has its own bucket
    now[0] = 6.0
    assert bucket.take("10.0.0.1") == 0.0
    assert bucket.take("2001:db8::1") == 0.0 and len(bucket.buckets) == 2  # bounded: the oldest is forgotten
    assert CreationLimiter.key("2001:db8::1") == CreationLimiter.key("2001:db8::ffff")  # IPv6 by /64


def test_uvicorns_lines_lose_their_query_strings():
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                               ("127.0.0.1:5000", "/ws/canvases/c1?token=SECRET"), None)  # fmt: skip
    RedactQueries().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "WebSocket /ws/canvases/c1" [accepted]'
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "GET /x?token=SECRET&a=1", None, None)
    RedactQueries().filter(record)
    assert "SECRET" not in record.getMessage()


def run_guard(settings: Settings, request: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    called = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(EdgeGuard(app, settings)(request, receive, send))
    return sent, bool(called)


def test_the_guard_around_an_app():
    settings = Settings(data_dir=Path("/nonexistent"))
    sent, called = run_guard(settings, {**scope(), "path": "/api/health"})
    headers = dict(sent[0]["headers"])
    assert called and headers[b"content-security-policy"].decode() == CONTENT_SECURITY_POLICY
    assert headers[b"x-frame-options"] == b"DENY" and headers[b"cache-control"] == b"no-store"
    sent, called = run_guard(settings, {**scope(), "path": "/index.html"})
    assert called and b"cache-control" not in dict(sent[0]["headers"])  # the client's files may be cached
    sent, called = run_guard(settings, {**scope(host="evil.test"), "path": "/"})
    assert not called and sent[0]["status"] == 421
    post = {**scope(Origin="http://evil.test"), "method": "POST", "path": "/api/canvases"}
    sent, called = run_guard(settings, post)
    assert not called and sent[0]["status"] == 403
    sent, called = run_guard(Settings(data_dir=Path("/nonexistent"), allowed_origins=("http://evil.test",)), post)
    assert called and sent[0]["status"] == 200
    sent, called = run_guard(Settings(data_dir=Path("/nonexistent"), host="0.0.0.0"), {**scope(host="evil.test")})
    assert called  # no Host check on a public bind without --allowed-hosts
