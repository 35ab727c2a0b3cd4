"""Access control as a matrix: every HTTP route of the application (enumerated from the Starlette app, so a new
route cannot be forgotten: it fails here until it is given a policy) and every WebSocket message type, against no
token, a garbage token, another canvas's owner, a revoked link, viewer, editor, owner and admin.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.app import create_app
from tests.reliability.relsupport import join, record_figures, start_server

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ROLES = ["none", "garbage", "revoked", "other", "viewer", "editor", "owner", "admin"]
RANK = {"viewer": 1, "editor": 2, "owner": 3, "admin": 4}
UNAUTHENTICATED = {"none", "garbage", "revoked"}

# Every (method, path) the app serves -> who may call it.
#   open: anyone; loopback: anyone on the server's own machine (the admin token for a local browser);
#   capability: anyone who knows the blob's hash; any: any valid token (results filtered to what it opens);
#   editor-anywhere: an editor (or more) of some canvas; viewer/editor/owner: that role on the canvas in the path.
POLICY = {
    ("GET", "/api/health"): "open",
    ("GET", "/api/session"): "loopback",
    ("GET", "/api/operations"): "open",
    ("GET", "/api/models"): "open",  # the library's names are in the operations' schemas already; no paths
    ("POST", "/api/models/rescan"): "admin",
    ("GET", "/api/canvases"): "any",
    ("POST", "/api/canvases"): "editor-anywhere",  # no anonymous writes (--open-creation: anyone, rate-limited)
    ("GET", "/api/canvases/{canvas_id}"): "viewer",
    ("GET", "/api/canvases/{canvas_id}/state"): "viewer",
    ("GET", "/api/canvases/{canvas_id}/events"): "viewer",
    ("POST", "/api/canvases/{canvas_id}/commands"): "editor",
    ("GET", "/api/canvases/{canvas_id}/renders"): "viewer",
    ("GET", "/api/canvases/{canvas_id}/images"): "viewer",
    ("POST", "/api/canvases/{canvas_id}/images"): "editor",
    ("GET", "/api/renders"): "admin",
    ("POST", "/api/canvases/{canvas_id}/layers/{layer_id}/cancel"): "editor",
    ("POST", "/api/canvases/{canvas_id}/fork"): "viewer",
    ("GET", "/api/canvases/{canvas_id}/workflow"): "viewer",
    ("GET", "/api/canvases/{canvas_id}/composite.png"): "viewer",
    ("GET", "/api/canvases/{canvas_id}/layers/{layer_id}/image.png"): "viewer",
    ("POST", "/api/workflows"): "editor-anywhere",
    ("POST", "/api/canvases/{canvas_id}/restore"): "editor",
    ("POST", "/api/canvases/{canvas_id}/shares"): "owner",
    ("GET", "/api/canvases/{canvas_id}/shares"): "owner",
    ("DELETE", "/api/canvases/{canvas_id}/shares/{share_id}"): "owner",
    ("GET", "/api/canvases/{canvas_id}/people"): "viewer",
    ("POST", "/api/blobs"): "editor-anywhere",
    ("GET", "/api/blobs/{sha256}"): "admin",
    ("GET", "/api/canvases/{canvas_id}/blobs/{sha256}"): "viewer",
}
WS_MESSAGES = ["command", "cancel", "presence", "get_state", "ping"]
_ids = itertools.count()


def app_routes() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in create_app().routes:
        if isinstance(route, Route):
            found |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
        elif not isinstance(route, WebSocketRoute | Mount):
            found.add(("?", repr(route)))
    return found


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


class World:
    def __init__(self, server: Any) -> None:
        self.server = server
        with server.client() as admin:
            canvas = admin.post("/api/canvases", json={"name": "Guarded"}).json()
            other = admin.post("/api/canvases", json={"name": "Elsewhere"}).json()
        self.canvas_id, self.owner = canvas["id"], canvas["owner_token"]
        self.other_canvas = other["id"]
        self.tokens: dict[str, str | None] = {
            "none": None, "garbage": "x" * 43, "other": other["owner_token"], "owner": self.owner,
            "admin": server.admin_token,
        }  # fmt: skip
        with server.client(self.owner) as client:
            for role in ("viewer", "editor"):
                self.tokens[role] = client.post(f"/api/canvases/{self.canvas_id}/shares", json={"role": role}).json()[
                    "token"
                ]
            revoked = client.post(f"/api/canvases/{self.canvas_id}/shares", json={"role": "editor"}).json()
            assert client.delete(f"/api/canvases/{self.canvas_id}/shares/{revoked['id']}").status_code == 200
            self.tokens["revoked"] = revoked["token"]
            self.sha = client.post(f"/api/blobs?canvas={self.canvas_id}", content=png()).json()["sha256"]
            added = client.post(f"/api/canvases/{self.canvas_id}/commands", json={"command_id": "add-L", "command": {
                "type": "add_layer", "layer_id": "L", "operation": "blank", "params": {"width": 8, "height": 8}}})  # fmt: skip
            assert added.status_code == 200, added.text
            for _ in range(300):  # the layer's picture, for image.png and composite.png
                layers = client.get(f"/api/canvases/{self.canvas_id}/state").json()["layers"]
                if layers[0]["status"] == "rendered":
                    break
                time.sleep(0.05)
        self.workflow = httpx.get(f"{server.url}/api/canvases/{self.canvas_id}/workflow",
                                  headers={"authorization": f"Bearer {self.owner}"}).content  # fmt: skip

    def headers(self, role: str) -> dict[str, str]:
        token = self.tokens[role]
        return {} if token is None else {"authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, role: str, canvas_id: str | None = None) -> httpx.Response:
        canvas_id = canvas_id or self.canvas_id
        share_id = ""
        if "{share_id}" in path:  # a fresh link to revoke each time, made by the owner
            with self.server.client(self.owner) as client:
                share_id = client.post(f"/api/canvases/{self.canvas_id}/shares", json={"role": "viewer"}).json()["id"]
        url = path.format(canvas_id=canvas_id, layer_id="L", share_id=share_id, sha256=self.sha)
        n = next(_ids)
        bodies: dict[str, Any] = {
            "/api/canvases": {"json": {"name": f"made by {role}"}},
            "/api/canvases/{canvas_id}/commands": {"json": {"command_id": f"m{n}",
                                                            "command": {"type": "rename_canvas", "name": f"n{n}"}}},
            "/api/canvases/{canvas_id}/fork": {"json": {"version": 1}},
            "/api/canvases/{canvas_id}/restore": {"json": {"version": 2, "command_id": f"r{n}"}},
            "/api/canvases/{canvas_id}/shares": {"json": {"role": "viewer"}},
            "/api/workflows": {"content": self.workflow},
            "/api/blobs": {"content": png()},
        }  # fmt: skip
        extra = bodies.get(path, {}) if method in ("POST", "PUT", "PATCH") else {}
        return httpx.request(method, self.server.url + url, headers=self.headers(role), timeout=60, **extra)


def expected(policy: str, role: str) -> int | str:
    if policy in ("open", "loopback", "capability"):
        return "allowed"
    if role in UNAUTHENTICATED:
        return 401
    if policy == "any":
        return "allowed"
    if policy == "editor-anywhere":
        return "allowed" if role in ("other", "editor", "owner", "admin") else 403
    if role == "other":
        return 403
    return "allowed" if RANK[role] >= RANK[policy] else 403


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("access") / "data")
    yield World(server)
    server.stop()


def test_every_route_has_a_policy():
    routes = app_routes()
    assert routes == set(POLICY), (
        f"routes without a policy here: {sorted(routes - set(POLICY))}; "
        f"policies for routes that no longer exist: {sorted(set(POLICY) - routes)}"
    )


def test_the_matrix_over_every_route(world):
    tally: dict[str, int] = {}
    problems: list[str] = []
    for (method, path), policy in sorted(POLICY.items()):
        for role in ROLES:
            for verb in (method, "HEAD") if method == "GET" else (method,):
                response = world.request(verb, path, role)
                want = expected(policy, role)
                got = response.status_code
                ok = got == want if isinstance(want, int) else (got not in (401, 403) and got < 500)
                if verb != "HEAD" and isinstance(want, int) and ok:
                    code = response.json()["error"]["code"]
                    ok = code == ("unauthorized" if want == 401 else "forbidden")
                if not ok:
                    problems.append(f"{verb} {path} as {role}: {got} (wanted {want}) {response.text[:120]}")
                tally[str(got)] = tally.get(str(got), 0) + 1
    assert not problems, "\n".join(problems)
    record_figures("access_http", {"requests": sum(tally.values()), "routes": len(POLICY), "roles": len(ROLES),
                                   "statuses": tally})  # fmt: skip


def test_a_canvas_token_learns_nothing_about_other_canvases(world):
    """Another canvas, existing or not, is 403 to a canvas token (no existence oracle); the admin gets 404."""
    for role in ("viewer", "editor", "owner"):
        for canvas_id in (world.other_canvas, "does-not-exist"):
            for path in ("/api/canvases/{canvas_id}/state", "/api/canvases/{canvas_id}/events",
                         "/api/canvases/{canvas_id}/shares"):  # fmt: skip
                assert world.request("GET", path, role, canvas_id).status_code == 403, (role, canvas_id, path)
    assert world.request("GET", "/api/canvases/{canvas_id}/state", "admin", "does-not-exist").status_code == 404
    with world.server.client(world.tokens["viewer"]) as client:
        assert [c["id"] for c in client.get("/api/canvases").json()["canvases"]] == [world.canvas_id]


def test_tokens_in_the_query_string_and_odd_headers(world):
    url = f"{world.server.url}/api/canvases/{world.canvas_id}/state"
    viewer = world.tokens["viewer"]
    assert httpx.get(url, params={"token": viewer}).status_code == 200
    assert httpx.get(url, headers={"authorization": f"bearer   {viewer}"}).status_code == 200
    for header in (f"Basic {viewer}", f"Bearer{viewer}", "Bearer", "Bearer " + "x" * 100_00, f"Bearer {viewer}x"):
        assert httpx.get(url, headers={"authorization": header}).status_code == 401, header
    # An editor link can neither mint links nor raise its own role.
    with world.server.client(world.tokens["editor"]) as client:
        assert client.post(f"/api/canvases/{world.canvas_id}/shares", json={"role": "editor"}).status_code == 403
    with world.server.client(world.owner) as client:
        assert client.post(f"/api/canvases/{world.canvas_id}/shares", json={"role": "owner"}).status_code == 400
        assert client.post(f"/api/canvases/{world.canvas_id}/shares", json={"role": "admin"}).status_code == 400


# --- WebSocket -----------------------------------------------------------------------------------------------


async def _hello(world: World, role: str, canvas_id: str | None = None, via_query: bool = False) -> Any:
    canvas_id = canvas_id or world.canvas_id
    token = world.tokens[role]
    query = f"?token={token}" if via_query and token else ""
    ws = await connect(f"ws://127.0.0.1:{world.server.port}/ws/canvases/{canvas_id}{query}", open_timeout=20)
    await ws.send(orjson.dumps({"type": "hello", "user": role, **({} if via_query else {"token": token})}).decode())
    return ws


async def _refusal(ws: Any) -> tuple[dict[str, Any], int]:
    first = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 20)
    return first, closed.value.rcvd.code


async def _reply(ws: Any, message: dict[str, Any], want: set[str]) -> dict[str, Any]:
    await ws.send(orjson.dumps(message).decode())
    async with asyncio.timeout(20):
        while True:
            reply = orjson.loads(await ws.recv())
            if reply["type"] in want:
                return reply


async def test_the_websocket_matrix(world):
    tally: dict[str, int] = {}
    for role in ROLES:
        for via_query in (False, True):
            ws = await _hello(world, role, via_query=via_query)
            if role in UNAUTHENTICATED or role == "other":
                first, code = await _refusal(ws)
                want = 4403 if role == "other" else 4401
                assert code == want and first["type"] == "error", (role, first, code)
                tally[f"refused {code}"] = tally.get(f"refused {code}", 0) + 1
                continue
            welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
            assert welcome["type"] == "welcome" and welcome["you"]["role"] == role, welcome
            can_edit = RANK[role] >= RANK["editor"]
            n = next(_ids)
            reply = await _reply(ws, {"type": "command", "command_id": f"ws{n}",
                                      "command": {"type": "rename_canvas", "name": f"ws{n}"}}, {"ack", "reject"})  # fmt: skip
            assert reply["type"] == ("ack" if can_edit else "reject"), (role, reply)
            if not can_edit:
                assert reply["code"] == "forbidden"
            reply = await _reply(ws, {"type": "cancel", "layer_id": "L"}, {"error"})
            assert reply["code"] == ("not_rendering" if can_edit else "cannot_cancel"), (role, reply)
            state = await _reply(ws, {"type": "get_state", "version": 1}, {"state"})
            assert state["version"] == 1
            await ws.send(orjson.dumps({"type": "presence", "cursor": {"x": 1, "y": 2}}).decode())  # viewers too
            assert (await _reply(ws, {"type": "ping", "t": n}, {"pong"}))["t"] == n
            await ws.close()
            tally[f"welcome {role}"] = tally.get(f"welcome {role}", 0) + 1
    # A canvas token on another canvas's socket, and a canvas that does not exist.
    for canvas_id, code in ((world.other_canvas, 4403), ("does-not-exist", 4403)):
        first, got = await _refusal(await _hello(world, "editor", canvas_id))
        assert got == code, (canvas_id, first)
    first, got = await _refusal(await _hello(world, "admin", "does-not-exist"))
    assert got == 4404
    record_figures("access_ws", {"roles": len(ROLES), "message_types": WS_MESSAGES, "outcomes": tally})


async def test_revoking_a_link_cuts_off_its_open_socket(world):
    """A link revoked while its socket is open gives no more access through that socket: not to edit, not to
    read what others do."""
    with world.server.client(world.owner) as client:
        link = client.post(f"/api/canvases/{world.canvas_id}/shares", json={"role": "editor"}).json()
    world.tokens["doomed"] = link["token"]
    peer = await join(world.server.port, world.canvas_id, link["token"], user="doomed")
    ack = await peer.command("before-revoke", {"type": "rename_canvas", "name": "still allowed"})
    assert ack["type"] == "ack"
    with world.server.client(world.owner) as client:
        assert client.delete(f"/api/canvases/{world.canvas_id}/shares/{link['id']}").status_code == 200
        # Someone else edits: the revoked socket must not see it.
        client.post(f"/api/canvases/{world.canvas_id}/commands",
                    json={"command_id": "after-revoke", "command": {"type": "rename_canvas", "name": "secret"}})  # fmt: skip
    seen: list[dict[str, Any]] = []
    closed_with = None
    try:
        await peer.send({"type": "command", "command_id": "after-revoke-2",
                         "command": {"type": "rename_canvas", "name": "not allowed any more"}})  # fmt: skip
        async with asyncio.timeout(20):
            while True:
                seen.append(await peer.recv())
    except ConnectionClosed as exc:
        closed_with = exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        pass  # still open after 20 s
    acks = [m for m in seen if m["type"] == "ack"]
    secrets = [m for m in seen if m["type"] == "event" and m["event"]["payload"].get("name") == "secret"]
    assert not acks, f"a revoked link still edits: {acks}"
    assert not secrets, "a revoked link still reads the canvas"
    assert closed_with == 4401, (closed_with, seen)
