"""The HTTP and WebSocket edge (issue #13, server/security.py), against real server processes over real sockets:
DNS rebinding (a foreign Host), cross-site writes and WebSocket hijacking (a foreign Origin), who gets the local
admin session, the security headers, no anonymous creation, and no token in the log."""

from __future__ import annotations

import contextlib
import json

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from server.security import CONTENT_SECURITY_POLICY
from tests.reliability.relsupport import new_canvas, record_figures, share, start_server
from tests.security.edgesupport import SECURITY_HEADERS, http, log_text, upgrade

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("edge") / "data", "--no-render", "--log-level", "info")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def canvas(server):
    canvas_id, owner = new_canvas(server, "Edge")
    tokens = {"owner": owner, "admin": server.admin_token}
    for role in ("viewer", "editor"):
        tokens[role] = share(server, canvas_id, owner, role)["token"]
    return canvas_id, tokens


def error_code(reply) -> str:
    return json.loads(reply.body)["error"]["code"]


def canvas_count(server) -> int:
    with server.client() as client:
        return len(client.get("/api/canvases").json()["canvases"])


def no_secret_in(reply, tokens: dict[str, str]) -> bool:
    return not any(token.encode() in reply.body for token in tokens.values())


FOREIGN_HOSTS = ["evil.test", "evil.test:{port}", "attacker.example:80", "127.0.0.1.evil.test:{port}",
                 "localhost.evil.test", "localhost:notaport", ""]  # fmt: skip


def test_a_rebinding_request_gets_nothing(server, canvas):
    """A page whose name was rebound to 127.0.0.1 talks to the server under its own name (Host): it gets a 421
    for everything (the session, the API even with a token, the client's files, a WebSocket) and no token."""
    canvas_id, tokens = canvas
    port = server.port
    before = canvas_count(server)
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    requests = [
        ("GET", "/api/session", {}, b""),
        ("GET", "/api/canvases", admin, b""),
        ("GET", f"/api/canvases/{canvas_id}/state?token={tokens['owner']}", {}, b""),
        ("GET", "/", {}, b""),
        ("POST", "/api/canvases", admin, b'{"name": "rebound"}'),
        ("POST", f"/api/canvases/{canvas_id}/shares", {"Authorization": f"Bearer {tokens['owner']}"},
         b'{"role": "editor"}'),
    ]  # fmt: skip
    refused = 0
    for pattern in FOREIGN_HOSTS:
        host = pattern.format(port=port)
        for method, path, headers, body in requests:
            reply = http(port, method, path, host, body, **headers)
            assert reply.status == 421, (host, method, path, reply.status, reply.body[:200])
            assert error_code(reply) == "forbidden_host" and no_secret_in(reply, tokens), reply.body
            refused += 1
        socket_reply = upgrade(port, f"/ws/canvases/{canvas_id}?token={tokens['owner']}", host)
        assert socket_reply.status == 403, (host, socket_reply)
        refused += 1
    assert canvas_count(server) == before  # nothing was created
    # The server's own names still work: loopback addresses and names, with or without a port.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"app.localhost:{port}", "127.8.9.10"):
        assert http(port, "GET", "/api/health", host).status == 200, host
        session = http(port, "GET", "/api/session", host)
        assert session.status == 200 and json.loads(session.body)["token"] == tokens["admin"], host
    record_figures("edge_rebinding", {"refused": refused, "hosts": len(FOREIGN_HOSTS)})


def test_the_local_session_goes_only_to_a_page_of_its_own(server, canvas):
    _, tokens = canvas
    port = server.port
    given = [
        {},
        {"Origin": f"http://127.0.0.1:{port}"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
    ]
    refused = [
        {"Origin": "http://evil.test"},
        {"Origin": "null"},  # a sandboxed frame, a file: page
        {"Origin": f"http://127.0.0.1:{port + 1}"},  # another server on this machine
        {"Origin": f"http://localhost:{port}"},  # another name for this server is another origin
        {"Origin": f"https://127.0.0.1:{port}"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"X-Forwarded-For": "203.0.113.7"},  # through a proxy on this machine: not "a browser on this machine"
        {"Forwarded": "for=127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
    ]
    for headers in given:
        reply = http(port, "GET", "/api/session", **headers)
        assert reply.status == 200, (headers, reply.body)
        assert json.loads(reply.body)["token"] == tokens["admin"] and reply.headers["cache-control"] == "no-store"
    for headers in refused:
        reply = http(port, "GET", "/api/session", **headers)
        assert reply.status == 403 and error_code(reply) == "forbidden", (headers, reply.body)
        assert no_secret_in(reply, tokens), headers


def test_writes_and_upgrades_from_another_origin_are_refused(server, canvas):
    canvas_id, tokens = canvas
    port = server.port
    own = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    command = orjson.dumps({"command_id": "x-origin", "command": {"type": "rename_canvas", "name": "hijacked"}})
    writes = [
        ("POST", "/api/canvases", admin, b'{"name": "cross-site"}'),
        ("POST", "/api/workflows", admin, b"{}"),
        ("POST", f"/api/canvases/{canvas_id}/commands", owner, command),
        ("POST", f"/api/canvases/{canvas_id}/shares", owner, b'{"role": "editor"}'),
        ("POST", f"/api/canvases/{canvas_id}/fork", owner, b'{"version": 1}'),
        ("DELETE", f"/api/canvases/{canvas_id}/shares/whatever", owner, b""),
        ("PUT", "/api/canvases", admin, b"{}"),
    ]
    cross = [{"Origin": "http://evil.test"}, {"Origin": "null"}, {"Origin": f"http://127.0.0.1:{port + 1}"},
             {"Origin": f"http://localhost:{port}"}, {"Sec-Fetch-Site": "cross-site"},
             {"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site"}, {"Origin": "garbage"}]  # fmt: skip
    before = canvas_count(server)
    for method, path, auth, body in writes:
        for headers in cross:
            reply = http(port, method, path, None, body, **auth, **headers)
            assert reply.status == 403 and error_code(reply) == "forbidden_origin", (method, path, headers, reply)
            if "Origin" in headers:
                assert headers["Origin"] in json.loads(reply.body)["error"]["message"]  # it names the origin
    assert canvas_count(server) == before
    with server.client() as client:
        assert client.get(f"/api/canvases/{canvas_id}/state").json()["name"] == "Edge"  # the command never ran
    # From the server's own pages, and from clients that are no page at all (curl, scripts): accepted.
    for headers in ({"Origin": own}, {"Origin": own, "Sec-Fetch-Site": "same-origin"}, {}):
        reply = http(port, "POST", "/api/canvases", None, b'{"name": "mine"}', **admin, **headers)
        assert reply.status == 201, (headers, reply.body)
    # Reads are not refused by Origin (tokens and CORS guard them): the answer carries no CORS grant.
    read = http(port, "GET", f"/api/canvases/{canvas_id}/state", **owner, Origin="http://evil.test")
    assert read.status == 200 and "access-control-allow-origin" not in read.headers

    # WebSocket upgrades: a foreign Origin is refused before the handshake, token or not.
    path = f"/ws/canvases/{canvas_id}?token={tokens['owner']}"
    for origin in ("http://evil.test", "null", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}"):
        assert upgrade(port, path, Origin=origin).status == 403, origin
    assert upgrade(port, path, Origin="http://evil.test", Sec_Fetch_Site="cross-site").status == 403
    assert upgrade(port, path, Origin=own).status == 101
    assert upgrade(port, path).status == 101
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{port}/ws/canvases/{canvas_id}", origin="http://evil.test", open_timeout=10)
    assert refused.value.response.status_code == 403
    with connect(f"ws://127.0.0.1:{port}/ws/canvases/{canvas_id}", origin=own, open_timeout=10) as ws:
        ws.send(orjson.dumps({"type": "hello", "token": tokens["editor"]}).decode())
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"


def test_security_headers_on_every_response(server, canvas):
    canvas_id, tokens = canvas
    port = server.port
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    cases = [
        ("GET", "/api/health", None, {}, 200),
        ("GET", "/api/canvases", None, admin, 200),
        ("GET", "/api/canvases", None, {}, 401),
        ("GET", f"/api/canvases/{canvas_id}/state", None, {"Authorization": f"Bearer {tokens['viewer']}"}, 200),
        ("GET", "/", None, {}, 200),
        ("GET", "/index.html", None, {}, 200),
        ("GET", "/js/main.js", None, {}, 200),
        ("GET", "/styles.css", None, {}, 200),
        ("GET", "/no/such/file.js", None, {}, 404),
        ("GET", "/api/nothing-here", None, {}, 404),
        ("DELETE", "/api/health", None, {}, 405),
        ("GET", "/api/blobs/not-a-hash", None, {}, 400),
        ("GET", "/api/health", "evil.test", {}, 421),
        ("POST", "/api/canvases", None, {**admin, "Origin": "http://evil.test"}, 403),
    ]
    for method, path, host, headers, status in cases:
        reply = http(port, method, path, host, **headers)
        assert reply.status == status, (method, path, reply.status, reply.body[:200])
        missing = [name for name in SECURITY_HEADERS if name not in reply.headers]
        assert not missing, (method, path, missing)
        assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
    policy = {d.split()[0]: d.split()[1:] for d in CONTENT_SECURITY_POLICY.split("; ")}
    assert policy["script-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_every_answer_that_carries_a_token_is_not_stored(server, canvas):
    canvas_id, tokens = canvas
    with server.client() as admin:
        workflow = admin.get(f"/api/canvases/{canvas_id}/workflow").content
        answers = {
            "session": httpx.get(server.url + "/api/session"),
            "create": admin.post("/api/canvases", json={"name": "cached?"}),
            "import": admin.post("/api/workflows", content=workflow),
            "fork": admin.post(f"/api/canvases/{canvas_id}/fork", json={"version": 1}),
            "share": admin.post(f"/api/canvases/{canvas_id}/shares", json={"role": "viewer"}),
            "shares": admin.get(f"/api/canvases/{canvas_id}/shares"),
            "state": admin.get(f"/api/canvases/{canvas_id}/state"),
            "client page with a token": httpx.get(server.url + f"/?canvas={canvas_id}&token={tokens['viewer']}"),
        }
    for what, response in answers.items():
        assert response.status_code in (200, 201), (what, response.text[:200])
        assert response.headers.get("cache-control") == "no-store", what


def test_creating_and_importing_need_a_token(server, canvas):
    canvas_id, tokens = canvas
    with server.client() as admin:
        workflow = admin.get(f"/api/canvases/{canvas_id}/workflow").content
    for path, body in (("/api/canvases", b'{"name": "anonymous"}'), ("/api/workflows", workflow)):
        before = canvas_count(server)
        for token, status in ((None, 401), ("x" * 43, 401), (tokens["viewer"], 403)):
            headers = {} if token is None else {"authorization": f"Bearer {token}"}
            response = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
            assert response.status_code == status, (path, token, response.text)
            assert response.json()["error"]["code"] == ("unauthorized" if status == 401 else "forbidden")
        assert canvas_count(server) == before
        for role in ("editor", "owner", "admin"):
            response = httpx.post(server.url + path, content=body, headers={"authorization": f"Bearer {tokens[role]}"})
            assert response.status_code == 201, (path, role, response.text)
            assert response.json()["owner_token"]
    anonymous = httpx.post(server.url + "/api/canvases", json={})
    assert "--open-creation" in anonymous.json()["error"]["message"]  # says how an operator opens it


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("open") / "data", "--no-render", "--open-creation",
                           "--no-local-admin")  # fmt: skip
    yield running
    running.stop()


def test_open_creation_lets_anyone_create_at_a_bounded_rate(open_server):
    """--open-creation: anyone may create and import without a token, 20 at once and 10 a minute after that per
    address; a 429 says when to come back. Token holders are not counted. --no-local-admin: no session."""
    url = open_server.url
    statuses = [httpx.post(url + "/api/canvases", json={"name": f"n{n}"}).status_code for n in range(20)]
    assert statuses == [201] * 20
    limited = httpx.post(url + "/api/canvases", json={"name": "one too many"})
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited", limited.text
    assert "try again in" in limited.json()["error"]["message"]
    assert httpx.post(url + "/api/workflows", content=b"{}").status_code == 429  # the same bucket
    with open_server.client() as admin:  # a token is not rate-limited
        assert admin.post("/api/canvases", json={"name": "admin"}).status_code == 201
        assert len(admin.get("/api/canvases").json()["canvases"]) == 21
    session = httpx.get(url + "/api/session")
    assert session.status_code == 403 and "--no-local-admin" in session.json()["error"]["message"]
    assert open_server.admin_token not in session.text
    record_figures("edge_open_creation", {"allowed_at_once": 20, "then": limited.status_code})


def test_hosts_and_origins_the_operator_allows(tmp_path_factory):
    """--allowed-hosts lets a name through (an exact name, or '*.name' for its subdomains), but the admin session
    still goes only to a loopback name; --allowed-origins lets another origin's pages write."""
    running = start_server(tmp_path_factory.mktemp("allowed") / "data", "--no-render",
                           "--allowed-hosts", "canvas.test,*.team.test", "--allowed-origins", "https://canvas.test")  # fmt: skip
    try:
        port, admin = running.port, {"Authorization": f"Bearer {running.admin_token}"}
        for host, status in (("canvas.test", 200), (f"canvas.test:{port}", 200), ("a.team.test", 200),
                             ("team.test", 421), ("evil.test", 421), (f"127.0.0.1:{port}", 200)):  # fmt: skip
            assert http(port, "GET", "/api/health", host).status == status, host
        session = http(port, "GET", "/api/session", "canvas.test")
        assert session.status == 403 and running.admin_token.encode() not in session.body
        for origin, status in (("https://canvas.test", 201), ("http://canvas.test", 201), ("https://evil.test", 403)):
            reply = http(port, "POST", "/api/canvases", "canvas.test", b"{}", **admin, Origin=origin)
            assert reply.status == status, (origin, reply.body)
    finally:
        running.stop()


def test_a_server_on_every_interface(tmp_path_factory):
    """Bound to 0.0.0.0 the server never hands out the admin session (any machine can reach it) and checks Host
    only when --allowed-hosts is given; the Origin check holds either way."""
    data = tmp_path_factory.mktemp("public")
    public = start_server(data / "a", "--no-render", "--host", "0.0.0.0")
    named = start_server(data / "b", "--no-render", "--host", "0.0.0.0", "--allowed-hosts", "canvas.test")
    try:
        session = http(public.port, "GET", "/api/session")
        assert session.status == 403 and public.admin_token.encode() not in session.body
        assert http(public.port, "GET", "/api/health", "evil.test").status == 200
        admin = {"Authorization": f"Bearer {public.admin_token}"}
        assert http(public.port, "POST", "/api/canvases", "evil.test", b"{}", **admin).status == 201
        origin = http(public.port, "POST", "/api/canvases", "evil.test", b"{}", **admin, Origin="http://elsewhere.test")
        assert origin.status == 403 and error_code(origin) == "forbidden_origin"
        assert http(named.port, "GET", "/api/health", "evil.test").status == 421
        assert http(named.port, "GET", "/api/health", "canvas.test").status == 200
        assert http(named.port, "GET", "/api/health", f"localhost:{named.port}").status == 200
    finally:
        public.stop()
        named.stop()


def test_no_token_in_the_log(server, canvas):
    """After tokens travelled every way they can (?token= on the API, the client page and the WebSocket, in hello,
    share links made and used), the server's log (access log at INFO) holds none of them."""
    canvas_id, tokens = canvas
    link = share(server, canvas_id, tokens["owner"], "editor")
    assert link["path"] == f"/?canvas={canvas_id}#token={link['token']}"  # the fragment: never sent to a server
    secrets = {**tokens, "link": link["token"], "garbage": "not-a-real-token-but-secret-looking-x9"}
    for token in secrets.values():
        httpx.get(server.url + f"/api/canvases/{canvas_id}/state", params={"token": token})
        httpx.get(server.url + f"/api/canvases/{canvas_id}/events?after=0&token={token}&limit=5")
        httpx.get(server.url + f"/?canvas={canvas_id}&token={token}")
        httpx.post(server.url + f"/api/canvases/{canvas_id}/commands?token={token}", json={})
        with (
            contextlib.suppress(ConnectionClosed),  # a refused token closes the socket: what matters is the log
            connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas_id}?token={token}", open_timeout=10) as ws,
        ):
            ws.send(orjson.dumps({"type": "hello", "token": token, "user": "logged"}).decode())
            ws.recv(timeout=10)
        upgrade(server.port, f"/ws/canvases/{canvas_id}?token={token}", Origin="http://evil.test")
    text = log_text(server)
    leaked = [name for name, token in secrets.items() if token in text]
    assert not leaked, f"tokens in the server log: {leaked}"
    assert f"GET /api/canvases/{canvas_id}/state 200" in text  # requests are logged, without their query
    assert f"WS /ws/canvases/{canvas_id} 101" in text
    assert f"WS /ws/canvases/{canvas_id} 403" in text and "forbidden_origin" in text
    assert f'"WebSocket /ws/canvases/{canvas_id}" [accepted]' in text  # uvicorn's own line, query cut off
    lines = [line for line in text.splitlines() if "opendream.access" in line]
    record_figures("edge_log", {"access_lines": len(lines), "log_bytes": len(text), "tokens_checked": len(secrets)})
