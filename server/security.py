"""The HTTP and WebSocket edge: what a request must look like before any route sees it (docs/security.md).

`EdgeGuard` is one ASGI middleware around the whole application. For every HTTP request and WebSocket
upgrade it

- refuses a `Host` that is not this server's (DNS rebinding): on a loopback bind anything but a loopback name or
  a host listed with `--allowed-hosts`; on another bind only when `--allowed-hosts` is given;
- refuses a cross-site write (CSRF) and a cross-site WebSocket (hijacking): an `Origin` other than the request's
  own `scheme://host:port` (or one listed with `--allowed-origins`), or `Sec-Fetch-Site: cross-site` without an
  allowed `Origin`, on every POST/PUT/PATCH/DELETE and every upgrade;
- adds the security headers (CSP, frame protection, nosniff, referrer policy) to every response, and
  `Cache-Control: no-store` to every API response that sets no caching of its own (tokens are handed out there);
- logs each request on `opendream.access` without its query string (tokens may travel as `?token=`).

Beside it, used by the routes and the command line: `local_session_refusal` (who gets the local admin token),
`CreationLimiter` (anonymous creation with `--open-creation`), `RedactQueries` (a logging filter for uvicorn's
own lines) and `bounded_h11_protocol` (uvicorn's h11 parser with a deadline for a request's headers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers, MutableHeaders

from server.http import ApiError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from server.config import Settings

access_log = logging.getLogger("opendream.access")

# Only the app's own files run or style anything. The client sets styles through the CSSOM (element.style.x,
# style.setProperty), which CSP does not govern, so style-src needs no 'unsafe-inline'. Previews are data: URLs,
# downloads blob: URLs; the live socket is ws(s): to the same server.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


# --- names and addresses -------------------------------------------------------------------------------------


def split_host(value: str) -> tuple[str, int | None]:
    """`Host`-style `name[:port]` (IPv6 in brackets) → (lower-case name without a trailing dot, port or None)."""
    value = value.strip().lower()
    port: int | None = None
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif value.count(":") == 1:
        name, _, digits = value.partition(":")
        port = int(digits) if digits.isdigit() else -1
    else:
        name = value  # a name, or a bare IPv6 address (never valid in Host, harmless here)
    return name.rstrip("."), port


def is_loopback(host: str) -> bool:
    """A loopback address, `localhost` or a name under `.localhost` (which resolvers must keep on this machine)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def origin_tuple(value: str) -> tuple[str, str, int] | None:
    """`scheme://host[:port]` → (scheme, host, port with defaults filled in); None for `null` or garbage."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip("."), port or DEFAULT_PORTS[parts.scheme]


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


# --- the middleware ------------------------------------------------------------------------------------------


class EdgeGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.loopback_bind = is_loopback(settings.host)
        self.allowed_hosts = {split_host(host)[0] for host in settings.allowed_hosts}
        self.check_host = "*" not in self.allowed_hosts and (self.loopback_bind or bool(self.allowed_hosts))
        self.allowed_origins = {origin for origin in map(origin_tuple, settings.allowed_origins) if origin}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        refusal: ApiError | None = None

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if scope["path"].startswith("/api/") or b"token=" in scope.get("query_string", b""):
                    headers.setdefault("cache-control", "no-store")
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and not status:
                status = 403  # closed before it was accepted: the server answers the upgrade with 403
            await send(message)

        try:
            refusal = self.refusal(scope, Headers(scope=scope))
            if refusal is None:
                await self.app(scope, receive, send_with_headers)
            else:
                await self.refuse(scope, receive, send_with_headers, refusal)
        except Exception:
            status = status or 500
            raise
        finally:
            method = "WS" if scope["type"] == "websocket" else scope["method"]
            path = quote(scope["path"][:512], safe="/:@!$&'()*+,;=-._~")  # no query string, no control characters
            elapsed = 1000 * (time.perf_counter() - started)
            why = f" {refusal.code}" if refusal is not None else ""
            access_log.info("%s %s %s %d %.1fms%s", client_address(scope), method, path, status, elapsed, why)

    @staticmethod
    async def refuse(scope: Scope, receive: Receive, send: Send, refusal: ApiError) -> None:
        if scope["type"] == "websocket":
            # Closed before the handshake: uvicorn answers the upgrade with a bare 403. (A denial response with
            # the JSON body works too, but uvicorn then logs "ASGI callable returned without completing
            # handshake" as an ERROR for every refused upgrade; the reason is in the access log instead.)
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        await refusal.response()(scope, receive, send)

    def refusal(self, scope: Scope, headers: Headers) -> ApiError | None:
        host = headers.get("host", "")
        if self.check_host and not self.host_allowed(host):
            flag = " (--allowed-hosts)" if self.loopback_bind else ""
            return ApiError(421, "forbidden_host", f"this server does not answer for host {host[:100]!r}{flag}", "Host")
        if scope["type"] == "websocket" or scope["method"] in WRITES:
            origin = headers.get("origin")
            cross_site = headers.get("sec-fetch-site") == "cross-site"
            if (origin is not None or cross_site) and not self.origin_allowed(scope, origin, host):
                named = repr(origin[:100]) if origin is not None else "(none, Sec-Fetch-Site: cross-site)"
                return ApiError(
                    403,
                    "forbidden_origin",
                    f"requests from origin {named} are not accepted here: only from this server's own pages "
                    "(or an origin listed with --allowed-origins)",
                    "Origin",
                )
        return None

    def host_allowed(self, host: str) -> bool:
        name, port = split_host(host)
        if not name or port == -1:
            return False
        if is_loopback(name) or name in self.allowed_hosts:
            return True
        return any(allowed.startswith("*.") and name.endswith(allowed[1:]) for allowed in self.allowed_hosts)

    def origin_allowed(self, scope: Scope, origin: str | None, host: str) -> bool:
        if origin is None:
            return False  # Sec-Fetch-Site: cross-site and no Origin to allow
        parsed = origin_tuple(origin)
        if parsed is None:
            return False  # "null": a sandboxed frame, a file: or data: page, a no-referrer form
        if parsed in self.allowed_origins:
            return True
        return parsed == own_origin(scope, host)


def own_origin(scope: Scope, host: str) -> tuple[str, str, int] | None:
    """The origin a page served by this very request's URL would have."""
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    name, port = split_host(host)
    if not name or port == -1 or scheme not in DEFAULT_PORTS:
        return None
    return scheme, name, port or DEFAULT_PORTS[scheme]


# --- the local admin session ---------------------------------------------------------------------------------


def local_session_refusal(scope: Scope, settings: Settings) -> str | None:
    """Why this request does not get the server's admin token (None: it does). It goes only to a browser on
    this machine talking to a loopback server by a loopback name, from the server's own page or no page at all."""
    headers = Headers(scope=scope)
    if not settings.local_admin:
        return "the local admin session is turned off (--no-local-admin)"
    if not is_loopback(settings.host):
        return "tokens are handed out only by a server that listens on loopback"
    if not is_loopback(client_address(scope)) or any(name in headers for name in FORWARDING_HEADERS):
        return "tokens are handed out only to this machine, not through a proxy"
    host = headers.get("host", "")
    if not is_loopback(split_host(host)[0]):
        return "tokens are handed out only when the server is addressed by a loopback name (localhost, 127.0.0.1)"
    origin = headers.get("origin")
    if origin is not None:
        parsed = origin_tuple(origin)
        if parsed is None or parsed != own_origin(scope, host):
            return f"tokens are not handed out to pages of another origin ({origin[:100]!r})"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "tokens are not handed out to pages of another origin"
    return None


# --- anonymous creation --------------------------------------------------------------------------------------


class CreationLimiter:
    """A token bucket per client address (IPv6 per /64) for creating canvases without a token."""

    def __init__(self, per_minute: float, burst: int, max_clients: int = 10_000, clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def take(self, address: str) -> float:
        """0 when this address may create now (and it is counted); else the seconds until it may."""
        key = self.key(address)
        now = self.clock()
        tokens, when = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self.buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate if self.rate > 0 else float("inf")
        while len(self.buckets) > self.max_clients:  # least recently seen first: the map stays bounded
            self.buckets.popitem(last=False)
        return wait

    @staticmethod
    def key(address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


# --- secrets never logged ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)


class RedactQueries(logging.Filter):
    """uvicorn logs WebSocket upgrades (and, when on, requests) with their query string: cut the query off a
    path argument, and blank any `token=` left in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.partition("?")[0] if isinstance(arg, str) and arg.startswith("/") else arg for arg in record.args
            )
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = _TOKEN.sub(r"\1[redacted]", record.msg)
        return True


# --- the HTTP parser's bounds --------------------------------------------------------------------------------


_TIMEOUT_BODY = b"the request's headers took too long\n"
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


def bounded_h11_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, whose buffer for an incomplete request is bounded by `h11_max_incomplete_event_size`
    (httptools, uvicorn's default parser, buffers a header line without limit), plus what uvicorn lacks: a
    deadline from a request's first byte (or the connection's opening) to the end of its headers, so a client
    that sends headers byte by byte, or nothing, is answered 408 and closed (slowloris)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        _header_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_deadline()

        def data_received(self, data: bytes) -> None:
            if self._header_deadline is None and self.conn.their_state is h11.IDLE:
                self._arm_header_deadline()  # the first byte of a request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # its request line and headers are in
                self._disarm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._header_deadline = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm_header_deadline(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(REQUEST_TIMEOUT)
                self.transport.close()

    return BoundedH11Protocol
